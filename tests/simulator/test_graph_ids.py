"""Default vs immutable event IDs, moves between calendars, and the `$filter`s a client may use to find its events.

Microsoft's rules modelled (https://learn.microsoft.com/graph/outlook-immutable-id): an event's default ID changes
when it moves to another calendar or folder, its immutable ID does not; `Prefer: IdType="ImmutableId"` applies only
to the request it is sent with (a `$batch` item only has its own headers).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.test_graph_support import World, build_world, collect, event_body

ROOM = "/users/room1@contoso.onmicrosoft.com"
C = "/_control/graph"
IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}
PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Marker"
WINDOW = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-02-01T00:00:00Z"}


@pytest.fixture
def gw() -> World:
    return build_world()


def test_the_prefer_header_decides_which_id_is_answered_and_accepted(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    made = g.post(f"{ROOM}/events", t, event_body("Booking"), headers=IMMUTABLE)
    assert made.status == 201
    immutable = made.body["id"]
    default = g.get(f"{ROOM}/events", t).body["value"][0]["id"]
    assert immutable != default
    assert g.get(f"{ROOM}/events/{immutable}", t, headers=IMMUTABLE).body["subject"] == "Booking"
    assert g.get(f"{ROOM}/events/{default}", t).body["subject"] == "Booking"
    # Each format only where the request asked for it, so a forgotten header shows up at once.
    assert g.get(f"{ROOM}/events/{immutable}", t).error == "ErrorItemNotFound"
    assert g.get(f"{ROOM}/events/{default}", t, headers=IMMUTABLE).error == "ErrorItemNotFound"
    # The header is one preference among others.
    both = g.get(f"{ROOM}/events/{immutable}", t, headers={"Prefer": 'outlook.timezone="UTC", IdType="ImmutableId"'})
    assert both.status == 200


def test_a_move_to_another_calendar_changes_the_default_id_only(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    other = g.post(f"{C}/mailboxes/{gw.room.address}/calendars", None, {"name": "Archive"}).body["id"]
    immutable = g.post(f"{ROOM}/events", t, event_body("Booking"), headers=IMMUTABLE).body["id"]
    default = g.get(f"{ROOM}/events", t).body["value"][0]["id"]

    moved = g.post(f"{C}/events/{immutable}/move", None, {"calendar_id": other})
    assert moved.status == 200 and moved.body["id"] == immutable and moved.body["calendarId"] == other
    assert moved.body["defaultId"] != default
    assert g.get(f"{ROOM}/events/{default}", t).error == "ErrorItemNotFound"  # the stored default ID is stale
    assert g.get(f"{ROOM}/events/{moved.body['defaultId']}", t).status == 200
    assert g.patch(f"{ROOM}/events/{immutable}", t, {"subject": "Renamed"}, headers=IMMUTABLE).status == 200
    assert g.get(f"{ROOM}/calendars/{other}/events/{immutable}", t, headers=IMMUTABLE).body["subject"] == "Renamed"
    assert g.get(f"{ROOM}/calendar/events/{immutable}", t, headers=IMMUTABLE).error == "ErrorItemNotFound"
    assert g.post(f"{C}/events/{immutable}/move", None, {"calendar_id": other}).status == 400  # already there
    assert g.delete(f"{ROOM}/events/{immutable}", t, headers=IMMUTABLE).status == 204


def test_each_batch_item_uses_its_own_prefer_header(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    json = {"Content-Type": "application/json"}
    reply = g.post("/$batch", t, {"requests": [
        {"id": "1", "method": "POST", "url": f"{ROOM}/events", "body": event_body("a"),
         "headers": {**json, **IMMUTABLE}},
        {"id": "2", "method": "POST", "url": f"{ROOM}/events", "body": event_body("b"), "headers": json},
    ]}, headers=IMMUTABLE)  # on the envelope only: does not reach item 2
    by_id = {r["id"]: r["body"]["id"] for r in reply.body["responses"]}
    listed = {e["subject"]: e for e in gw.state.list_events(gw.room.address)}
    assert by_id["1"] == listed["a"]["id"]
    assert by_id["2"] == listed["b"]["defaultId"] != listed["b"]["id"]


def _round(g: Any, t: str, url: str, headers: dict[str, str]) -> tuple[list[Any], str]:
    items, last = collect(g, g.get(url, t, query=WINDOW, headers=headers) if "?" not in url
                          else g.follow(url, t, headers), t, headers)
    return items, last.body["@odata.deltaLink"]


@pytest.mark.parametrize("immutable", [True, False])
def test_delta_of_an_event_moved_away_and_back(gw: World, immutable: bool) -> None:
    g, t = gw.graph, gw.alice_token
    headers = IMMUTABLE if immutable else {}
    other = gw.state.create_calendar(gw.room.address, "Elsewhere")["id"]
    made = gw.state.create_event(gw.room.address, event_body("Booking"))
    shown = made["id"] if immutable else made["defaultId"]
    url = f"{ROOM}/calendar/calendarView/delta"
    items, link = _round(g, t, url, headers)
    assert [i["id"] for i in items] == [shown]

    gw.state.move_event(made["id"], other)
    items, link = _round(g, t, link, headers)
    assert items == [{"@odata.type": "#microsoft.graph.event", "id": shown, "@removed": {"reason": "deleted"}}]

    back = gw.state.move_event(made["id"], gw.state.calendars(gw.room.address)[0]["id"])
    gw.state.move_event(made["id"], other)
    gw.state.move_event(made["id"], gw.state.calendars(gw.room.address)[0]["id"])
    items, link = _round(g, t, link, headers)
    now = gw.state.list_events(gw.room.address)[0]
    assert back["id"] == now["id"] == made["id"]
    if immutable:  # one event, as before
        assert [(i["id"], "@removed" in i) for i in items] == [(made["id"], False)]
    else:  # to a client with default IDs it is a new event (the old ID was already reported removed)
        assert [(i["id"], "@removed" in i) for i in items] == [(now["defaultId"], False)]
        assert now["defaultId"] != made["defaultId"]


def test_transaction_id_is_not_filterable_but_the_marker_is(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    made = g.post(f"{ROOM}/events", t, event_body(
        "Booking", transactionId="txn-1", singleValueExtendedProperties=[{"id": PROP, "value": "v1;Item-A"}]),
        headers=IMMUTABLE).body
    refused = g.get(f"{ROOM}/events", t, query={"$filter": "transactionId eq 'txn-1'"}, headers=IMMUTABLE)
    assert refused.status == 400 and refused.error == "ErrorInvalidProperty"

    def find(prop_id: str, value: str) -> list[str]:
        flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{prop_id}' and ep/value eq '{value}')"
        reply = g.get(f"{ROOM}/events", t, query={"$filter": flt, "$select": "id,transactionId"}, headers=IMMUTABLE)
        assert reply.status == 200, reply.body
        return [e["id"] for e in reply.body["value"]]

    assert find(PROP, "v1;Item-A") == [made["id"]]
    # "Filtering the value property of an extended property is case-insensitive"; the name in the id is not.
    assert find(PROP, "V1;ITEM-a") == [made["id"]]
    assert find(PROP.upper().replace("NAME MARKER", "Name Marker"), "v1;Item-A") == [made["id"]]  # GUID any case
    assert find(PROP.replace("Marker", "marker"), "v1;Item-A") == []
