"""Export through the HTTP API to the simulator's calendars: content, time zones, updates, cancels."""

import pytest

from shared.export.content import MARKER_ID
from tests.helpers import connect


def events_of(simulator, mailbox):
    return simulator.sim.graph.list_events(mailbox)


def occurrence(key, start, end, tz="Europe/London"):
    return {"key": key, "start": start, "end": end, "time_zone": tz}


BOOKING = {
    "patron": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.edu"},
    "public_nickname": "Study group",
    "location_text": "Room 101, Main Library",
    "notes": "Projector needed",
    "occurrences": [occurrence("2026-12-01T10", "2026-12-01T10:00:00", "2026-12-01T11:00:00")],
}


@pytest.fixture
def room(api, simulator, directory, system):
    connect(api, simulator, system, "space", "room101", directory.staff)
    response = api.patch(f"/api/systems/{system}/connections/space/room101",
                         json={"sync_resource": directory.room, "location": "main"})
    assert response.status_code == 200, response.text
    return directory.room


def put(api, system, kind, subject, item, body):
    return api.put(f"/api/systems/{system}/connections/{kind}/{subject}/items/{item}", json=body)


@pytest.mark.parametrize(("mode", "nickname_on", "expected"), [
    ("patron_name", True, "Ada Lovelace"),
    ("patron_name_email", True, "Ada Lovelace (ada@example.edu)"),
    ("public_nickname", True, "Study group"),
    ("public_nickname", False, ""),
])
def test_space_events_are_titled_by_the_location_mode(api, simulator, system, room, mode, nickname_on, expected):
    api.put(f"/api/systems/{system}/locations/main", json={"title_mode": mode})
    response = put(api, system, "space", "room101", "b1", {**BOOKING, "nicknames_enabled": nickname_on})
    assert response.status_code == 200, response.text
    (occ,) = response.json()["occurrences"]
    assert occ["state"] == "synced" and occ["sync_id"]
    (event,) = events_of(simulator, room)
    assert event["id"] == occ["sync_id"]
    assert event["subject"] == expected
    assert event["location"]["displayName"] == "Room 101, Main Library"


def test_shift_uses_its_title_and_carries_the_marker(api, simulator, system, staff):
    response = put(api, system, "user", "u1", "shift-9", {
        "title": "Reference desk", "occurrences": [occurrence("s1", "2026-12-02T09:00:00", "2026-12-02T13:00:00")]})
    assert response.status_code == 200, response.text
    (event,) = events_of(simulator, staff)
    assert event["subject"] == "Reference desk"
    props = {p["id"]: p["value"] for p in event.get("singleValueExtendedProperties", [])}
    assert props[MARKER_ID] == f"v1;{system};user;u1;shift-9;s1"
    assert event["transactionId"]


def test_times_keep_their_wall_clock_across_dst(api, simulator, system, staff):
    occurrences = [occurrence("before", "2026-03-28T09:00:00", "2026-03-28T10:00:00"),  # GMT
                   occurrence("after", "2026-03-30T09:00:00", "2026-03-30T10:00:00")]  # BST
    response = put(api, system, "user", "u1", "dst", {"title": "Opening", "occurrences": occurrences})
    assert response.status_code == 200, response.text
    starts = sorted(e["start"]["dateTime"][:16] for e in events_of(simulator, staff))
    assert starts == ["2026-03-28T09:00", "2026-03-30T08:00"]  # UTC: 09:00 GMT, then 09:00 BST


def test_a_time_skipped_by_dst_is_refused(api, system, staff):
    response = put(api, system, "user", "u1", "gap", {
        "title": "x", "occurrences": [occurrence("g", "2026-03-29T01:30:00", "2026-03-29T02:30:00")]})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "occurrences[0].start"


def test_changes_update_in_place_and_removed_occurrences_are_deleted(api, simulator, system, staff):
    first = put(api, system, "user", "u1", "shift", {
        "title": "Desk", "occurrences": [occurrence("a", "2026-12-03T09:00:00", "2026-12-03T10:00:00"),
                                         occurrence("b", "2026-12-04T09:00:00", "2026-12-04T10:00:00")]}).json()
    ids = {o["key"]: o["sync_id"] for o in first["occurrences"]}
    second = put(api, system, "user", "u1", "shift", {
        "title": "Desk (moved)", "occurrences": [occurrence("a", "2026-12-03T11:00:00", "2026-12-03T12:00:00"),
                                                 occurrence("c", "2026-12-05T09:00:00", "2026-12-05T10:00:00")]})
    assert second.status_code == 200, second.text
    now = {o["key"]: o["sync_id"] for o in second.json()["occurrences"]}
    assert now["a"] == ids["a"]  # updated in place
    events = {e["id"]: e for e in events_of(simulator, staff)}
    assert set(events) == {ids["a"], now["c"]}  # b's event deleted, c's created
    assert events[ids["a"]]["subject"] == "Desk (moved)"
    assert events[ids["a"]]["start"]["dateTime"].startswith("2026-12-03T11:00")
    again = put(api, system, "user", "u1", "shift", {
        "title": "Desk (moved)", "occurrences": [occurrence("a", "2026-12-03T11:00:00", "2026-12-03T12:00:00"),
                                                 occurrence("c", "2026-12-05T09:00:00", "2026-12-05T10:00:00")]})
    assert {o["state"] for o in again.json()["occurrences"]} == {"synced"}
    got = api.get(f"/api/systems/{system}/connections/user/u1/items/shift").json()
    assert {o["key"]: o["sync_id"] for o in got["occurrences"]} == now


def test_cancel_deletes_events_and_an_event_already_gone_counts_as_done(api, simulator, system, staff):
    body = {"title": "Desk", "occurrences": [occurrence("a", "2026-12-03T09:00:00", "2026-12-03T10:00:00"),
                                             occurrence("b", "2026-12-04T09:00:00", "2026-12-04T10:00:00")]}
    created = put(api, system, "user", "u1", "shift", body).json()
    simulator.sim.graph.delete_event(created["occurrences"][0]["sync_id"])  # someone deleted it in Outlook
    response = api.delete(f"/api/systems/{system}/connections/user/u1/items/shift")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled" and response.json()["deleted_events"] == 2
    assert events_of(simulator, staff) == []
    assert api.get(f"/api/systems/{system}/connections/user/u1/items/shift").status_code == 404


def test_an_event_deleted_in_outlook_is_recreated_when_the_item_changes(api, simulator, system, staff):
    body = {"title": "Desk", "occurrences": [occurrence("a", "2026-12-03T09:00:00", "2026-12-03T10:00:00")]}
    created = put(api, system, "user", "u1", "shift", body).json()
    simulator.sim.graph.delete_event(created["occurrences"][0]["sync_id"])
    changed = put(api, system, "user", "u1", "shift", {**body, "title": "Desk 2"}).json()
    (event,) = events_of(simulator, staff)
    assert event["subject"] == "Desk 2" and event["id"] == changed["occurrences"][0]["sync_id"]


@pytest.mark.parametrize(("body", "field"), [
    ({"occurrences": "x"}, "occurrences"),
    ({"occurrences": [{"key": "a", "start": "2026-12-01T10:00:00", "end": "2026-12-01T09:00:00",
                       "time_zone": "UTC"}]}, "occurrences[0].end"),
    ({"occurrences": [{"key": "a", "start": "2026-12-01T10:00:00", "end": "2026-12-01T11:00:00",
                       "time_zone": "Mars/Olympus"}]}, "occurrences[0].time_zone"),
    ({"occurrences": [{"key": "a/b", "start": "2026-12-01T10:00:00", "end": "2026-12-01T11:00:00",
                       "time_zone": "UTC"}]}, "occurrences[0].key"),
    ({"occurrences": [], "patron": "Ada"}, "patron"),
])
def test_bad_items_are_refused_naming_the_field(api, system, staff, body, field):
    response = put(api, system, "user", "u1", "bad", body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


def test_removing_the_authorization_can_remove_the_products_events_only(api, simulator, system, staff):
    mine = put(api, system, "user", "u1", "shift", {
        "title": "Desk", "occurrences": [occurrence("a", "2026-12-03T09:00:00", "2026-12-03T10:00:00"),
                                         occurrence("b", "2026-12-04T09:00:00", "2026-12-04T10:00:00")]})
    assert mine.status_code == 200
    personal = simulator.sim.graph.create_event(staff, {
        "subject": "Dentist", "start": {"dateTime": "2026-12-03T12:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-03T13:00:00", "timeZone": "UTC"}})
    response = api.delete(f"/api/systems/{system}/connections/user/u1?remove_events=true")
    assert response.status_code == 200, response.text
    assert response.json() == {"removed": True, "events_removed": 2}
    assert [e["id"] for e in events_of(simulator, staff)] == [personal["id"]]


@pytest.mark.parametrize(("zone", "start"), [
    ("Europe", "2026-12-01T10:00:00"),  # a directory of zone files, not a zone
    ("a" * 300, "2026-12-01T10:00:00"),
    ("Europe/London", "0001-01-01T00:00:00"),  # would not survive the round trip to storage
])
def test_found_by_fuzzing_odd_zones_and_years_are_refused(api, system, staff, zone, start):
    end = start.replace("T10", "T11").replace("T00", "T01")
    response = put(api, system, "user", "u1", "odd", {
        "title": "x", "occurrences": [{"key": "a", "start": start, "end": end, "time_zone": zone}]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"].startswith("occurrences[0].")
