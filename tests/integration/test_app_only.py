"""App-only room connections through the HTTP API: the app's own client-credentials token, limited by an Exchange
RBAC-for-Applications management scope in the simulator, with no signed-in person."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from tests.helpers import configure, connect, new_system, wait_for

SCOPE = "Booking rooms"
BOOKABLE = "CustomAttribute1 -eq 'booking'"
ROLE = "Application Calendars.ReadWrite"
SOON = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)


def booking(hours_from_soon, key="o1"):
    start = SOON + timedelta(hours=hours_from_soon)
    return {"patron": {"first_name": "Ada", "last_name": "Lovelace"},
            "occurrences": [{"key": key, "start": start.strftime("%Y-%m-%dT%H:%M:%S"),
                             "end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "time_zone": "UTC"}]}


def outlook_event(subject, hours_from_soon):
    start = SOON + timedelta(hours=hours_from_soon)
    return {"subject": subject, "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}}


@pytest.fixture
def scoped(simulator, directory):
    """The Exchange admin's steps: a management scope of the rooms marked bookable (only room-101), and the app's
    role assignment limited to it. The app has no Entra calendar permission at all."""
    control = simulator.control
    control.set_mailbox_attributes(directory.room, CustomAttribute1="booking")
    control.create_management_scope(directory.tenant_id, SCOPE, BOOKABLE)
    control.assign_management_role(directory.tenant_id, directory.client_id, ROLE, SCOPE)
    return directory


@pytest.fixture
def app_system(api, scoped):
    system = new_system()
    configure(api, system, scoped, app_access={"enabled": True, "tenant_id": scoped.tenant_id})
    return system


def mailbox_requests(simulator):
    """Graph requests on mailboxes so far, by route (subscriptions and places are not mailbox routes)."""
    counts = simulator.sim.counters.snapshot()["counts"]
    return Counter({k: v for k, v in counts.items()
                    if k.startswith(("graph.calendar", "graph.event", "graph.delta", "graph.user", "graph.schedule"))})


def put_room(api, system, room, subject="r1", **body):
    return api.put(f"/api/systems/{system}/connections/space/{subject}",
                   json={"mode": "app", "sync_resource": room, **body})


def status(api, system, subject="r1"):
    return api.get(f"/api/systems/{system}/connections/space/{subject}").json()


def alerts(api, system):
    return api.get(f"/api/systems/{system}/alerts").json()["alerts"]


def feed(api, system, cursor="0"):
    return api.get(f"/api/systems/{system}/connections/space/r1/external-events?cursor={cursor}").json()


# --- both ways with no signed-in person -----------------------------------------------------------------------


def test_a_room_in_app_mode_syncs_both_ways_without_a_sign_in(api, simulator, scoped, app_system, services,
                                                              storage_connection_string, app):
    before = mailbox_requests(simulator)
    created = put_room(api, app_system, scoped.room, two_way=True, location="main")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["mode"], body["status"], body["account"], body["sync_resource"]) == (
        "app", "connected", None, scoped.room)
    # One Graph call checked the room and named its default calendar, which became the sync calendar.
    assert mailbox_requests(simulator) - before == Counter({"graph.calendar.list": 1})
    calendars = api.get(f"/api/systems/{app_system}/connections/space/r1/calendars").json()["calendars"]
    assert body["sync_calendar_id"] == next(c["id"] for c in calendars if c["is_default"])
    assert "next_step" not in body

    exported = api.put(f"/api/systems/{app_system}/connections/space/r1/items/b1", json=booking(2))
    assert exported.status_code == 200, exported.text
    sync_id = exported.json()["occurrences"][0]["sync_id"]
    assert [e["id"] for e in simulator.sim.graph.list_events(scoped.room)] == [sync_id]

    assert services.pull.pull(app_system, "r1")["outcome"] == "pulled"  # baseline: our own event only
    assert feed(api, app_system)["changes"] == []
    simulator.sim.graph.create_event(scoped.room, outlook_event("Chess club", 5), as_user=scoped.other_staff)
    assert services.pull.pull(app_system, "r1")["outcome"] == "pulled"
    changes = feed(api, app_system)["changes"]
    assert [(c["type"], c["event"]["subject"]) for c in changes] == [("created", "Chess club")]

    counts = simulator.sim.counters.snapshot()["counts"]
    assert counts.get("identity.token.refresh_token.ok", 0) == 0  # client credentials: no refresh token
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    caches = tables.get_table_client(app.env["TABLE_PREFIX"] + "tokencaches")
    assert list(caches.query_entities("PartitionKey eq @s", parameters={"s": app_system})) == []


def test_a_room_outside_the_scope_is_refused_with_what_to_fix_and_nothing_is_stored(api, scoped, app_system):
    response = put_room(api, app_system, scoped.other_room)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["code"], error["microsoft_code"]) == ("mailbox_not_in_scope", "ErrorAccessDenied")
    assert scoped.other_room in error["message"]
    assert f"Test-ServicePrincipalAuthorization -Identity {scoped.client_id} -Resource {scoped.other_room}" in (
        error["message"])
    assert "Application Calendars.ReadWrite" in error["message"]
    assert api.get(f"/api/systems/{app_system}/connections/space/r1").status_code == 404


def test_a_room_that_leaves_the_scope_is_marked_and_alerted_and_clears_when_access_returns(
        api, simulator, scoped, app_system, services):
    assert put_room(api, app_system, scoped.room, two_way=True).status_code == 201
    assert services.pull.pull(app_system, "r1")["outcome"] == "pulled"

    simulator.control.set_mailbox_attributes(scoped.room, CustomAttribute1=None)  # out of the scope's filter
    refused = services.pull.pull_from_queue(app_system, "r1")
    assert refused == {"outcome": "access_denied", "microsoft_code": "ErrorAccessDenied"}
    now = status(api, app_system)
    assert now["status"] == "access_denied"
    assert now["last_error"]["microsoft_code"] == "ErrorAccessDenied"
    assert "Exchange administrator" in now["next_step"]
    [alert] = alerts(api, app_system)
    assert (alert["type"], alert["subject"], alert["microsoft_code"], alert["status"]) == (
        "app_access_denied", "space:r1", "ErrorAccessDenied", "open")
    assert scoped.room in alert["message"] and "Test-ServicePrincipalAuthorization" in alert["message"]
    assert "reauthoriz" not in alert["message"].lower()  # nobody can fix this by signing in

    simulator.control.set_mailbox_attributes(scoped.room, CustomAttribute1="booking")
    assert services.pull.pull_from_queue(app_system, "r1")["outcome"] == "pulled"  # the next pull is the check
    assert status(api, app_system)["status"] == "connected"
    assert status(api, app_system)["last_error"] is None
    assert [(a["type"], a["status"]) for a in alerts(api, app_system)] == [("app_access_denied", "resolved")]


def test_an_export_refused_per_request_marks_the_room_and_the_daily_sweep_clears_it(
        api, simulator, scoped, app_system, timed):
    assert put_room(api, app_system, scoped.room).status_code == 201  # one-way: no pull ever checks it
    simulator.control.set_mailbox_attributes(scoped.room, CustomAttribute1="elsewhere")

    parked = api.put(f"/api/systems/{app_system}/connections/space/r1/items/b1", json=booking(2))
    assert parked.status_code == 202, parked.text
    assert status(api, app_system)["status"] == "access_denied"
    assert [a["type"] for a in alerts(api, app_system)] == ["app_access_denied"]
    assert simulator.sim.graph.list_events(scoped.room) == []

    simulator.control.set_mailbox_attributes(scoped.room, CustomAttribute1="booking")
    swept = timed.token_health.sweep(app_system)
    assert swept["access_checks_queued"] == 1 and swept["refreshes_queued"] == 0
    wait_for(lambda: status(api, app_system)["status"] == "connected", what="the queued access check")
    assert [(a["type"], a["status"]) for a in alerts(api, app_system)] == [("app_access_denied", "resolved")]


def test_calendars_is_the_check_on_demand_and_patch_to_a_room_outside_the_scope_changes_nothing(
        api, simulator, scoped, app_system):
    assert put_room(api, app_system, scoped.room).status_code == 201
    simulator.control.set_mailbox_attributes(scoped.room, CustomAttribute1=None)
    refused = api.get(f"/api/systems/{app_system}/connections/space/r1/calendars")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "mailbox_not_in_scope"
    assert status(api, app_system)["status"] == "access_denied"

    simulator.control.set_mailbox_attributes(scoped.room, CustomAttribute1="booking")
    assert api.get(f"/api/systems/{app_system}/connections/space/r1/calendars").status_code == 200
    assert status(api, app_system)["status"] == "connected"

    moved = api.patch(f"/api/systems/{app_system}/connections/space/r1", json={"sync_resource": scoped.other_room})
    assert moved.status_code == 403
    assert moved.json()["error"]["microsoft_code"] == "ErrorAccessDenied"
    after = status(api, app_system)
    assert (after["status"], after["sync_resource"]) == ("connected", scoped.room)


# --- token health ---------------------------------------------------------------------------------------------


def test_token_health_leaves_app_mode_alone_and_replacing_a_sign_in_erases_its_tokens(
        api, simulator, scoped, app_system, timed, storage_connection_string, app):
    connect(api, simulator, app_system, "space", "r1", scoped.staff)  # a delegated connection first
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    schedule = tables.get_table_client(app.env["TABLE_PREFIX"] + "refreshdue")
    assert [e for e in schedule.list_entities() if e["system"] == app_system]

    replaced = put_room(api, app_system, scoped.room)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["mode"] == "app"
    assert [e for e in schedule.list_entities() if e["system"] == app_system] == []

    simulator.control.advance_clock(days=95)  # past any refresh token's life
    timed.token_health.sweep(app_system)
    assert [e for e in schedule.list_entities() if e["system"] == app_system] == []
    assert timed.token_health.refresh({"system": app_system, "kind": "space", "id": "r1"}) == "app_mode"
    assert status(api, app_system)["status"] == "connected"
    # The in-memory app token is past its (simulated) life: Graph answers 401 and a new one is fetched.
    assert api.put(f"/api/systems/{app_system}/connections/space/r1/items/b1", json=booking(2)).status_code == 200
    assert alerts(api, app_system) == []


def test_an_expired_client_secret_is_the_credentials_alert(api, simulator, directory, scoped):
    made = simulator.control.add_secret(directory.client_id, expires_in_days=10)
    system = new_system()
    configure(api, system, directory, client_secret=made["value"],
              app_access={"enabled": True, "tenant_id": directory.tenant_id})
    assert put_room(api, system, directory.room).status_code == 201

    simulator.control.advance_clock(days=11)
    response = api.put(f"/api/systems/{system}/connections/space/r1/items/b1", json=booking(2))
    assert response.status_code == 202  # kept, retried once the secret is replaced
    [alert] = alerts(api, system)
    assert (alert["type"], alert["subject"], alert["microsoft_code"]) == (
        "credentials_invalid", "integration", "AADSTS7000222")
    assert status(api, system)["status"] == "connected"  # the room itself is fine


# --- what is refused ------------------------------------------------------------------------------------------


def test_app_mode_needs_app_access_on_the_integration(api, directory, system):
    response = put_room(api, system, directory.room)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "app_access_not_enabled"
    assert "app_access" in response.json()["error"]["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"mode": "delegated", "sync_resource": "room@x.test"}, "mode"),
    ({"mode": "robot", "sync_resource": "room@x.test"}, "mode"),
    ({"mode": "app"}, "sync_resource"),
    ({"mode": "app", "sync_resource": "not-an-address"}, "sync_resource"),
    ({"mode": "app", "sync_resource": "room@x.test", "freebusy_calendar_id": "x"}, "freebusy_calendar_id"),
    ({"mode": "app", "sync_resource": "room@x.test", "two_way": "yes"}, "two_way"),
])
def test_bad_app_connection_bodies_are_400s(api, app_system, body, field):
    response = api.put(f"/api/systems/{app_system}/connections/space/r1", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


def test_users_and_container_spaces_cannot_be_app_mode_connections(api, scoped, app_system):
    user = api.put(f"/api/systems/{app_system}/connections/user/u1",
                   json={"mode": "app", "sync_resource": scoped.room})
    assert user.status_code == 400 and user.json()["error"]["details"]["field"] == "kind"
    seats = put_room(api, app_system, scoped.room, space_type="container_space_with_seats")
    assert seats.status_code == 422 and seats.json()["error"]["code"] == "space_cannot_sync"


def test_an_unknown_mailbox_is_a_422(api, scoped, app_system):
    response = put_room(api, app_system, f"nobody@{scoped.domain}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "mailbox_not_found"


# --- the integration's app access -----------------------------------------------------------------------------


@pytest.mark.parametrize(("app_access", "account_type", "field"), [
    ({"enabled": True}, "common", "app_access.tenant_id"),
    ({"enabled": True, "tenant_id": "common"}, "common", "app_access.tenant_id"),
    ({"enabled": True, "tenant_id": "organizations"}, "organizations", "app_access.tenant_id"),
    ({"enabled": True, "tenant_id": "9188040d-6c67-4c5b-b112-36a304b66dad"}, "consumers", "app_access"),
    ({"enabled": "yes"}, "common", "app_access.enabled"),
    ({"enabled": True, "tenant": "x"}, "common", "app_access.tenant"),
])
def test_app_access_needs_one_directory(api, directory, app_access, account_type, field):
    body = {"client_id": directory.client_id, "client_secret": directory.secret, "account_type": account_type,
            "app_access": app_access}
    response = api.put(f"/api/systems/{new_system()}/integration", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


def test_app_access_in_a_directory_that_never_consented_is_a_422_with_the_consent_link(api, simulator, directory):
    other = simulator.control.create_tenant("Shelbyville College", "shelby.test")
    system = new_system()
    response = api.put(f"/api/systems/{system}/integration", json={
        "client_id": directory.client_id, "client_secret": directory.secret, "account_type": "common",
        "app_access": {"enabled": True, "tenant_id": other["id"]}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["microsoft_code"]) == ("app_not_in_directory", "AADSTS700016")
    assert f"{other['id']}/adminconsent?client_id={directory.client_id}" in error["message"]
    assert api.get(f"/api/systems/{system}/integration").json()["configured"] is False


def test_turning_app_access_on_needs_the_secret_and_off_is_refused_while_rooms_use_it(api, scoped, system):
    body = {"client_id": scoped.client_id, "account_type": "common", "allowed_return_origins":
            ["https://booking.example.edu"]}
    on = api.put(f"/api/systems/{system}/integration",
                 json={**body, "app_access": {"enabled": True, "tenant_id": scoped.tenant_id}})
    assert on.status_code == 403 and on.json()["error"]["code"] == "client_secret_required"
    on = api.put(f"/api/systems/{system}/integration", json={
        **body, "client_secret": scoped.secret, "app_access": {"enabled": True, "tenant_id": scoped.tenant_id}})
    assert on.status_code == 200, on.text
    shown = on.json()["app_access"]
    assert (shown["enabled"], shown["tenant_id"], shown["warning"]) == (True, scoped.tenant_id, None)
    assert shown["scope"].endswith("/.default") and shown["authority"].endswith(f"/{scoped.tenant_id}")

    assert api.put(f"/api/systems/{system}/integration", json=body).json()["app_access"]["enabled"]  # kept
    assert put_room(api, system, scoped.room).status_code == 201
    off = api.put(f"/api/systems/{system}/integration", json={**body, "app_access": {"enabled": False}})
    assert off.status_code == 409, off.text
    assert off.json()["error"]["code"] == "app_connections_exist"
    assert "r1" in off.json()["error"]["message"]
    assert api.delete(f"/api/systems/{system}/connections/space/r1").status_code == 200
    off = api.put(f"/api/systems/{system}/integration", json={**body, "app_access": {"enabled": False}})
    assert off.status_code == 200 and off.json()["app_access"]["enabled"] is False


def test_a_sign_in_on_an_app_mode_room_makes_it_delegated(api, simulator, scoped, app_system):
    assert put_room(api, app_system, scoped.room).status_code == 201
    connect(api, simulator, app_system, "space", "r1", scoped.staff)
    now = status(api, app_system)
    assert (now["mode"], now["account"]["username"], now["sync_resource"]) == (
        "delegated", scoped.staff, scoped.room)
    assert api.get(f"/api/systems/{app_system}/connections/space/r1/calendars").status_code == 200
