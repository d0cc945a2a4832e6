"""Connection status, choices and removal through the HTTP API."""

import pytest
from azure.data.tables import TableServiceClient

from tests.helpers import authorize, connect, follow_sign_in, query_of


def test_user_chooses_sync_and_freebusy_calendars(api, simulator, directory, system):
    connect(api, simulator, system, "user", "u1", directory.staff)
    second = simulator.sim.graph.create_calendar(directory.staff, "Shifts")
    calendars = {c["name"]: c["id"] for c in
                 api.get(f"/api/systems/{system}/connections/user/u1/calendars").json()["calendars"]}
    assert set(calendars) >= {"Calendar", "Shifts"}
    response = api.patch(f"/api/systems/{system}/connections/user/u1",
                         json={"sync_calendar_id": second["id"], "freebusy_calendar_id": calendars["Calendar"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sync_calendar_id"] == second["id"]
    assert body["freebusy_calendar_id"] == calendars["Calendar"]
    assert "next_step" not in body


def test_status_tells_the_host_what_to_do_next(api, simulator, directory, system):
    connect(api, simulator, system, "user", "u1", directory.staff)
    assert "choose a sync calendar" in api.get(f"/api/systems/{system}/connections/user/u1").json()["next_step"]


def test_unknown_calendar_is_refused(api, simulator, directory, system):
    connect(api, simulator, system, "user", "u1", directory.staff)
    response = api.patch(f"/api/systems/{system}/connections/user/u1", json={"sync_calendar_id": "AAMk-nope"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "calendar_not_found"


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("user", {"two_way": True}, "two_way"),
    ("space", {"freebusy_calendar_id": "x"}, "freebusy_calendar_id"),
    ("user", {"sync_resource": "not-an-address"}, "sync_resource"),
    ("space", {"two_way": "yes"}, "two_way"),
])
def test_settings_that_do_not_fit_the_kind_are_refused(api, simulator, directory, system, kind, body, field):
    connect(api, simulator, system, kind, "s1", directory.staff)
    response = api.patch(f"/api/systems/{system}/connections/{kind}/s1", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


def test_unknown_connection_and_kind(api, system):
    assert api.get(f"/api/systems/{system}/connections/user/nobody").status_code == 404
    response = api.get(f"/api/systems/{system}/connections/robot/r1")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "kind"


def test_remove_authorization_erases_tokens_and_leaves_events(api, simulator, directory, system,
                                                              storage_connection_string, app):
    connect(api, simulator, system, "user", "u1", directory.staff)
    event = simulator.sim.graph.create_event(directory.staff, {
        "subject": "Dentist", "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"}})
    bad = api.delete(f"/api/systems/{system}/connections/user/u1?remove_events=maybe")
    assert bad.status_code == 400
    response = api.delete(f"/api/systems/{system}/connections/user/u1")
    assert response.status_code == 200
    assert response.json() == {"removed": True, "events_removed": 0}
    assert api.get(f"/api/systems/{system}/connections/user/u1").status_code == 404
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    caches = tables.get_table_client(app.env["TABLE_PREFIX"] + "tokencaches")
    assert list(caches.query_entities("PartitionKey eq @s", parameters={"s": system})) == []
    schedule = tables.get_table_client(app.env["TABLE_PREFIX"] + "refreshdue")
    assert [e for e in schedule.list_entities() if e["system"] == system] == []
    assert [e["id"] for e in simulator.sim.graph.list_events(directory.staff)] == [event["id"]]


def test_replacing_the_account_resets_calendar_choices(api, simulator, directory, system):
    connect(api, simulator, system, "user", "u1", directory.staff)
    calendar = api.get(f"/api/systems/{system}/connections/user/u1/calendars").json()["calendars"][0]
    api.patch(f"/api/systems/{system}/connections/user/u1", json={"sync_calendar_id": calendar["id"]})
    landing = follow_sign_in(api, simulator, authorize(api, system, "user", "u1", replace_account=True),
                             directory.other_staff)
    assert query_of(landing)["outcome"] == "connected"
    status = api.get(f"/api/systems/{system}/connections/user/u1").json()
    assert status["account"]["username"] == directory.other_staff
    assert status["sync_calendar_id"] is None


def test_the_token_cache_is_reused_without_refreshing_on_every_call(api, simulator, directory, system):
    """A refresh per call would rotate the refresh token every time (and lose it on any crash in between)."""
    connect(api, simulator, system, "user", "u1", directory.staff)
    for _ in range(3):
        assert api.get(f"/api/systems/{system}/connections/user/u1/calendars").status_code == 200
    counts = simulator.sim.counters.snapshot()["counts"]
    assert counts.get("identity.token.refresh_token.ok", 0) == 0
    assert counts.get("graph.calendar.list", counts.get("graph.requests", 0)) >= 3


@pytest.mark.parametrize("address", ["x@y/../../me", "room@", "@contoso.org", "a b@contoso.org"])
def test_found_by_fuzzing_a_malformed_mailbox_is_a_400(api, simulator, directory, system, address):
    connect(api, simulator, system, "user", "u1", directory.staff)
    response = api.patch(f"/api/systems/{system}/connections/user/u1", json={"sync_resource": address})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "sync_resource"
