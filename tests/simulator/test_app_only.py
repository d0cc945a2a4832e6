"""App-only access as Microsoft documents it: client-credentials tokens whose roles are what each tenant's
administrator granted, and Exchange Online RBAC for Applications (management scopes, role assignments, the
propagation delay, Test-ServicePrincipalAuthorization), through MSAL and real HTTPS Graph requests."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.control import Control, ControlError
from simulator.seed import seed_demo
from simulator.testing import RunningSimulator, http_session, sign_in
from tests.simulator.conftest import REDIRECT_URI, World

pytestmark = [pytest.mark.filterwarnings("ignore:Using /common or /organizations authority"),
              pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")]
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
ROOMS = "RecipientTypeDetails -eq 'RoomMailbox'"
DENIED = ("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
EVENT = {"subject": "Booking", "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
         "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"}}


@pytest.fixture
def rooms(control: Control, world: World) -> dict[str, str]:
    return {
        "r1": control.create_room(world.contoso, "room-1@contoso.test", "Room 1")["address"],
        "r2": control.create_room(world.contoso, "room-2@contoso.test", "Room 2")["address"],
        "f1": control.create_room(world.fabrikam, "room-9@fabrikam.test", "Fabrikam Room")["address"],
    }


@pytest.fixture
def rbac_app(control: Control, world: World) -> tuple[str, str]:
    """A multi-tenant app registered in Contoso asking for no Graph calendar permission at all."""
    made = control.create_app(world.contoso, "Room sync", redirect_uris=[REDIRECT_URI])
    return made["client_id"], made["secrets"][0]["value"]


def _token(make_msal, client_id: str, secret: str, tenant: str) -> dict[str, Any]:
    return make_msal(client_id, secret, tenant).acquire_token_for_client(GRAPH_DEFAULT)


class Graph:
    def __init__(self, simulator: RunningSimulator, token: str) -> None:
        self.session = http_session(simulator.ca_path)
        self.base = f"{simulator.url}/v1.0"
        self.headers = {"Authorization": f"Bearer {token}"}

    def read(self, mailbox: str) -> tuple[int, Any]:
        reply = self.session.get(f"{self.base}/users/{mailbox}/calendar", headers=self.headers)
        return reply.status_code, reply.json()

    def write(self, mailbox: str) -> tuple[int, Any]:
        reply = self.session.post(f"{self.base}/users/{mailbox}/events", json=EVENT, headers=self.headers)
        return reply.status_code, reply.json()


def _denied(reply: tuple[int, Any]) -> bool:
    status, body = reply
    return status == 403 and (body["error"]["code"], body["error"]["message"]) == DENIED


# --- tokens: per-tenant roles ---------------------------------------------------------------------------------


def test_roles_are_what_each_tenants_administrator_granted(simulator, world, control, make_msal):
    app = world.org_app  # multi-tenant, registered in Contoso with Calendars.ReadWrite
    home = _token(make_msal, app.client_id, app.secret, world.contoso)
    assert simulator.sim.tokens.lookup(home["access_token"]).scopes == {"Calendars.ReadWrite"}

    granted = control.grant_app_permissions(world.fabrikam, app.client_id, ["Place.Read.All"])
    foreign = _token(make_msal, app.client_id, app.secret, world.fabrikam)

    assert granted["app_roles"] == ["Place.Read.All"]
    grant = simulator.sim.tokens.lookup(foreign["access_token"])
    assert (grant.tenant_id, grant.scopes) == (world.fabrikam, frozenset({"Place.Read.All"}))
    again = _token(make_msal, app.client_id, app.secret, world.contoso)  # Fabrikam's grant stays in Fabrikam
    assert simulator.sim.tokens.lookup(again["access_token"]).scopes == {"Calendars.ReadWrite"}


def test_revoked_roles_are_missing_from_new_tokens_only(simulator, world, control, make_msal):
    app = world.org_app
    old = _token(make_msal, app.client_id, app.secret, world.contoso)["access_token"]

    control.revoke_app_permissions(world.contoso, app.client_id, ["Calendars.ReadWrite"])
    new = _token(make_msal, app.client_id, app.secret, world.contoso)["access_token"]  # a new client: no cache

    assert simulator.sim.tokens.lookup(new).scopes == frozenset()
    assert simulator.sim.tokens.lookup(old).scopes == {"Calendars.ReadWrite"}  # a JWT's roles cannot be recalled


@pytest.mark.parametrize("segment", ["common", "organizations"])
def test_client_credentials_on_a_multiplexer_is_50059(world, make_msal, segment):
    result = _token(make_msal, world.org_app.client_id, world.org_app.secret, segment)

    assert (result["error"], result["error_codes"]) == ("invalid_request", [50059])
    assert result["error_description"].startswith(
        "AADSTS50059: No tenant-identifying information found in either the request or implied by any provided "
        "credentials.\r\nTrace ID:")


def test_a_users_consent_creates_the_service_principal_but_grants_no_role(simulator, world, make_msal):
    app = world.org_app
    assert _token(make_msal, app.client_id, app.secret, world.fabrikam)["error_codes"] == [700016]

    client = make_msal(app.client_id, app.secret, "organizations")
    flow = client.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT_URI)
    params = sign_in(flow["auth_uri"], world.carol, ca_path=simulator.ca_path)
    assert "access_token" in client.acquire_token_by_auth_code_flow(flow, params)
    result = _token(make_msal, app.client_id, app.secret, world.fabrikam)

    assert simulator.sim.tokens.lookup(result["access_token"]).scopes == frozenset()


def test_unknown_and_delegated_only_permissions_are_refused(world, control):
    with pytest.raises(ControlError, match=r"Calendars\.ReadWrite\.Shared"):
        control.grant_app_permissions(world.contoso, world.org_app.client_id, ["Calendars.ReadWrite.Shared"])
    with pytest.raises(ControlError, match="single-tenant"):
        control.grant_app_permissions(world.fabrikam, world.single_app.client_id, ["Place.Read.All"])


# --- Exchange RBAC for Applications -----------------------------------------------------------------------------


def test_a_room_scope_opens_rooms_and_nothing_else(simulator, world, control, make_msal, rooms, rbac_app):
    client_id, secret = rbac_app
    control.create_management_scope(world.contoso, "Rooms", ROOMS)
    control.assign_management_role(world.contoso, client_id, "Application Calendars.ReadWrite", "Rooms")
    token = _token(make_msal, client_id, secret, world.contoso)["access_token"]
    graph = Graph(simulator, token)

    assert simulator.sim.tokens.lookup(token).scopes == frozenset()  # no Entra role: RBAC alone decides
    assert graph.read(rooms["r1"])[0] == 200
    assert graph.write(rooms["r2"])[0] == 201
    assert _denied(graph.read(world.alice))
    assert graph.read(rooms["f1"])[0] == 404  # another tenant's mailbox is not even found


def test_entra_and_rbac_grants_add_up(simulator, world, control, make_msal, rooms):
    app = world.org_app  # Entra Calendars.ReadWrite: every mailbox of Contoso, whatever RBAC says
    control.create_management_scope(world.contoso, "Rooms", ROOMS)
    control.assign_management_role(world.contoso, app.client_id, "Application Calendars.Read", "Rooms")
    graph = Graph(simulator, _token(make_msal, app.client_id, app.secret, world.contoso)["access_token"])

    assert graph.write(world.alice)[0] == 201
    assert graph.write(rooms["r1"])[0] == 201


def test_a_read_role_reads_but_cannot_write(simulator, world, control, make_msal, rooms, rbac_app):
    client_id, secret = rbac_app
    control.create_management_scope(world.contoso, "Rooms", ROOMS)
    control.assign_management_role(world.contoso, client_id, "Application Calendars.Read", "Rooms")
    graph = Graph(simulator, _token(make_msal, client_id, secret, world.contoso)["access_token"])

    status, calendar = graph.read(rooms["r1"])
    assert (status, calendar["canEdit"]) == (200, False)
    assert _denied(graph.write(rooms["r1"]))


def test_moving_a_room_out_of_its_scope_closes_it(simulator, world, control, make_msal, rooms, rbac_app):
    client_id, secret = rbac_app
    control.set_mailbox_attributes(rooms["r1"], CustomAttribute1="bookable")
    control.set_mailbox_attributes(rooms["r2"], CustomAttribute1="bookable")
    control.create_management_scope(world.contoso, "Bookable rooms",
                                    "RecipientTypeDetails -eq 'RoomMailbox' -and CustomAttribute1 -eq 'Bookable'")
    control.assign_management_role(world.contoso, client_id, "Application Calendars.ReadWrite", "Bookable rooms")
    graph = Graph(simulator, _token(make_msal, client_id, secret, world.contoso)["access_token"])
    assert graph.read(rooms["r1"])[0] == 200

    control.set_mailbox_attributes(rooms["r1"], CustomAttribute1=None)

    assert _denied(graph.read(rooms["r1"]))
    assert graph.read(rooms["r2"])[0] == 200
    tested = control.test_service_principal_authorization(world.contoso, client_id, rooms["r1"])
    assert tested["results"] == [{"RoleName": "Application Calendars.ReadWrite",
                                  "GrantedPermissions": ["Calendars.ReadWrite"],
                                  "AllowedResourceScope": "Bookable rooms", "ScopeType": "CustomRecipientScope",
                                  "InScope": False}]


def test_the_propagation_delay_holds_changes_back_in_simulated_time(simulator, world, control, make_msal, rooms,
                                                                     rbac_app):
    client_id, secret = rbac_app

    def read_room() -> tuple[int, Any]:  # a fresh token each time: hours pass, tokens live one
        return Graph(simulator, _token(make_msal, client_id, secret, world.contoso)["access_token"]).read(rooms["r1"])

    control.set_rbac_propagation_delay(7200)  # Microsoft: 30 minutes to 2 hours
    control.create_management_scope(world.contoso, "Rooms", ROOMS)
    control.assign_management_role(world.contoso, client_id, "Application Calendars.ReadWrite", "Rooms")

    assert _denied(read_room())
    assert control.test_service_principal_authorization(world.contoso, client_id, rooms["r1"])["results"][0][
        "InScope"] is True  # the test cmdlet bypasses the cache
    control.advance_clock(seconds=7100)
    assert _denied(read_room())
    control.advance_clock(seconds=200)
    assert read_room()[0] == 200

    control.remove_management_role(world.contoso, client_id, "Application Calendars.ReadWrite", "Rooms")
    assert read_room()[0] == 200  # the removal is held back just the same
    control.advance_clock(seconds=7201)
    assert _denied(read_room())


def test_an_assignment_without_scope_covers_the_organization(world, control, rooms, rbac_app):
    client_id, _ = rbac_app
    control.assign_management_role(world.contoso, client_id, "application calendars.read")

    everything = control.test_service_principal_authorization(world.contoso, client_id)["results"]
    alice = control.test_service_principal_authorization(world.contoso, client_id, world.alice)["results"]

    assert everything == [{"RoleName": "Application Calendars.Read", "GrantedPermissions": ["Calendars.Read"],
                           "AllowedResourceScope": "Organization", "ScopeType": "Organization",
                           "InScope": "Not Run"}]
    assert alice[0]["InScope"] is True


def test_rbac_in_one_tenant_gives_nothing_in_another(simulator, world, control, make_msal, rooms):
    app = world.org_app
    control.grant_app_permissions(world.fabrikam, app.client_id, ["Place.Read.All"])
    control.create_management_scope(world.contoso, "Rooms", ROOMS)
    control.assign_management_role(world.contoso, app.client_id, "Application Calendars.ReadWrite", "Rooms")
    graph = Graph(simulator, _token(make_msal, app.client_id, app.secret, world.fabrikam)["access_token"])

    assert _denied(graph.read(rooms["f1"]))
    assert control.test_service_principal_authorization(world.fabrikam, app.client_id, rooms["f1"])["results"] == []


@pytest.mark.parametrize("recipient_filter", [
    "RecipientTypeDetails -eq 'RoomMailbox'",
    "PrimarySmtpAddress -eq 'ROOM-1@contoso.test' -or PrimarySmtpAddress -eq 'room-2@contoso.test'",
    "(CustomAttribute3 -eq 'x' -or RecipientTypeDetails -eq \"RoomMailbox\") -and PrimarySmtpAddress -eq "
    "'room-1@contoso.test'",
])
def test_supported_filters(world, control, rooms, rbac_app, recipient_filter):
    client_id, _ = rbac_app
    control.create_management_scope(world.contoso, "S", recipient_filter)
    control.assign_management_role(world.contoso, client_id, "Application Calendars.Read", "S")

    def in_scope(mailbox: str) -> bool:
        return control.test_service_principal_authorization(world.contoso, client_id, mailbox)["results"][0][
            "InScope"]

    assert in_scope(rooms["r1"]) is True
    assert in_scope(world.alice) is False


@pytest.mark.parametrize(("recipient_filter", "named"), [
    ("Department -eq 'Rooms'", "Department"),
    ("CustomAttribute1 -like 'room*'", "-like"),
    ("CustomAttribute1 -ne 'x'", "-ne"),
    ("-not (CustomAttribute1 -eq 'x')", "-not"),
    ("CustomAttribute16 -eq 'x'", "CustomAttribute16"),
    ("CustomAttribute1 -eq rooms", "quoted"),
    ("(CustomAttribute1 -eq 'x'", "ends too early"),
    ("RecipientTypeDetails -eq 'Robot'", "RecipientTypeDetails"),
    ("", "empty"),
])
def test_unsupported_filters_are_refused_with_the_reason(world, control, recipient_filter, named):
    with pytest.raises(ControlError, match=named) as refused:
        control.create_management_scope(world.contoso, "S", recipient_filter)
    assert refused.value.status == 400
    assert control.state()["exchange_rbac"]["tenants"] == {}  # nothing was created


def test_rbac_objects_are_checked_like_exchange_does(world, control, rbac_app):
    client_id, _ = rbac_app
    control.create_management_scope(world.contoso, "Rooms", ROOMS)
    refusals = {
        "no Place.Read.All role": lambda: control.assign_management_role(
            world.contoso, client_id, "Application Place.Read.All", "Rooms"),
        "unknown scope": lambda: control.assign_management_role(
            world.contoso, client_id, "Application Calendars.Read", "Nope"),
        "no service principal": lambda: control.assign_management_role(
            world.fabrikam, client_id, "Application Calendars.Read"),
        "duplicate scope": lambda: control.create_management_scope(world.contoso, "rooms", ROOMS),
    }
    statuses = {}
    for label, call in refusals.items():
        with pytest.raises(ControlError) as refused:
            call()
        statuses[label] = refused.value.status
    control.assign_management_role(world.contoso, client_id, "Application Calendars.Read", "Rooms")
    with pytest.raises(ControlError, match="used by") as in_use:
        control.delete_management_scope(world.contoso, "Rooms")

    assert statuses == {"no Place.Read.All role": 404, "unknown scope": 404, "no service principal": 404,
                        "duplicate scope": 409}
    assert in_use.value.status == 409
    control.remove_management_role(world.contoso, client_id, "Application Calendars.Read", "Rooms")
    control.delete_management_scope(world.contoso, "Rooms")
    assert control.state()["exchange_rbac"]["tenants"][world.contoso] == {"management_scopes": [],
                                                                          "role_assignments": []}


def test_the_control_api_over_http(simulator, world, rooms, rbac_app):
    client_id, _ = rbac_app
    http = http_session(simulator.ca_path)
    base = f"{simulator.url}/_control"
    tenant = f"{base}/tenants/{world.contoso}"

    made = http.post(f"{tenant}/management-scopes", json={"name": "Rooms", "recipient_filter": ROOMS})
    bad = http.post(f"{tenant}/management-scopes", json={"name": "X", "recipient_filter": "Title -eq 'x'"})
    changed = http.patch(f"{tenant}/management-scopes/Rooms",
                         json={"recipient_filter": "CustomAttribute2 -eq 'sync'"})
    assigned = http.post(f"{tenant}/management-role-assignments",
                         json={"client_id": client_id, "role": "Application Calendars.ReadWrite", "scope": "Rooms"})
    attrs = http.patch(f"{base}/mailboxes/{rooms['r1']}/attributes", json={"CustomAttribute2": "sync"})
    tested = http.get(f"{tenant}/service-principals/{client_id}/authorization", params={"mailbox": rooms["r1"]})
    granted = http.post(f"{tenant}/app-permissions", json={"client_id": client_id, "roles": ["Place.Read.All"]})
    revoked = http.delete(f"{tenant}/app-permissions", json={"client_id": client_id, "roles": ["Place.Read.All"]})
    delay = http.put(f"{base}/rbac/propagation-delay", json={"seconds": 1800})
    removed = http.delete(f"{tenant}/management-role-assignments",
                          json={"client_id": client_id, "role": "Application Calendars.ReadWrite", "scope": "Rooms"})
    deleted = http.delete(f"{tenant}/management-scopes/Rooms")

    assert [r.status_code for r in (made, bad, changed, assigned, attrs, tested, granted, revoked, delay, removed,
                                    deleted)] == [201, 400, 200, 201, 200, 200, 201, 200, 200, 200, 200]
    assert "Title" in bad.json()["error"]["message"]
    assert tested.json()["results"][0]["InScope"] is True
    assert (granted.json()["app_roles"], revoked.json()["app_roles"]) == (["Place.Read.All"], [])
    assert simulator.sim.directory.rbac.propagation_seconds == 1800


def test_the_demo_app_reaches_rooms_through_its_rbac_scope_only(simulator, make_msal):
    demo = seed_demo(simulator.sim, "https://localhost:7071/api/oauth/callback")
    token = _token(make_msal, demo["client_id"], demo["client_secret"], demo["tenant_id"])["access_token"]
    graph = Graph(simulator, token)
    listed = graph.session.get(f"{graph.base}/places/{demo['room_lists'][0]['address']}/microsoft.graph.roomlist/"
                               "rooms", headers=graph.headers).json()["value"]

    assert simulator.sim.tokens.lookup(token).scopes == {"Place.Read.All", "User.Read.All"}
    assert demo["app_only"]["role_assignment"] == {"role": "Application Calendars.ReadWrite", "scope": "Rooms"}
    assert all(graph.write(room["address"])[0] == 201 for room in demo["rooms"])
    assert _denied(graph.read(demo["staff"][0]["address"]))
    assert {r["emailAddress"] for r in listed} == {r["address"] for r in demo["rooms"]}
    assert len(demo["rooms"]) == 4 and all(r["capacity"] for r in listed)
