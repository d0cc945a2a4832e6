"""The `/_control/graph/` JSON API: acting "in Outlook", steering latency, limits and faults, reading counters."""

from __future__ import annotations

import pytest

from tests.simulator.test_graph_support import World, build_world, event_body

C = "/_control/graph"
ROOM = "room1@contoso.onmicrosoft.com"


@pytest.fixture
def gw() -> World:
    return build_world()


def test_events_created_updated_and_deleted_in_outlook(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    cal = g.post(f"{C}/mailboxes/{ROOM}/calendars", None, {"name": "Overflow"})
    assert cal.status == 201 and cal.body["name"] == "Overflow"
    assert [c["name"] for c in g.get(f"{C}/mailboxes/{ROOM}/calendars").body] == ["Calendar", "Overflow"]

    made = g.post(f"{C}/mailboxes/{ROOM}/events", None, {
        "event": event_body("Walk-in", recurrence={"pattern": {"type": "daily", "interval": 1},
                                                   "range": {"type": "numbered", "startDate": "2030-01-07",
                                                             "numberOfOccurrences": 2}}),
        "as_user": gw.bob.address,
    })
    assert made.status == 201
    assert made.body["organizer"]["emailAddress"] == {"name": "Bob Baker", "address": gw.bob.address}
    assert made.body["isOrganizer"] is False and made.body["type"] == "seriesMaster"
    seen = g.get(f"/users/{ROOM}/events/{made.body['defaultId']}", t).body
    assert seen["organizer"]["emailAddress"]["address"] == gw.bob.address

    moved = g.call("PATCH", f"{C}/events/{made.body['id']}", None, {"changes": {"subject": "Walk-in (edited)"},
                                                                   "as_user": gw.bob.address})
    assert moved.status == 200 and moved.body["subject"] == "Walk-in (edited)"
    listed = g.get(f"{C}/mailboxes/{ROOM}/events").body
    assert [e["subject"] for e in listed] == ["Walk-in (edited)"] and listed[0]["mailbox"] == ROOM
    assert g.get(f"{C}/mailboxes/{ROOM}/events", query={"calendar_id": cal.body["id"]}).body == []
    assert g.delete(f"{C}/events/{made.body['id']}").status == 204
    assert g.delete(f"{C}/events/{made.body['id']}").status == 404
    assert g.get(f"{C}/mailboxes/{ROOM}/events").body == []


def test_settings_faults_counters_and_reset(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    assert g.call("PUT", f"{C}/latency", None, {"fixed_ms": 5, "jitter_ms": 1}).body == {"fixed_ms": 5.0,
                                                                                         "jitter_ms": 1.0}
    limits = g.call("PUT", f"{C}/throttling", None, {"concurrency": 2, "budget": 50}).body
    assert limits["concurrency"] == 2 and limits["budget"] == 50
    assert g.call("PUT", f"{C}/throttling", None, {"nonsense": 1}).status == 400

    rule = g.post(f"{C}/faults", None, {"kind": "503", "count": 1, "path_contains": "/calendar"})
    assert rule.status == 201 and rule.body["kind"] == "503"
    assert len(g.get(f"{C}/faults").body) == 1
    assert g.get("/me/calendar", t).status == 503
    assert g.get("/me/calendar", t).status == 200
    g.post(f"{C}/faults", None, {"kind": "reset"})
    assert g.delete(f"{C}/faults").status == 204 and g.get(f"{C}/faults").body == []
    assert g.post(f"{C}/faults", None, {"kind": "explode"}).status == 400

    g.post("/me/events", t, event_body())
    counters = g.get(f"{C}/counters").body
    assert counters["counts"]["graph.event.create"] == 1
    assert counters["counts"]["graph.faults.503"] == 1
    assert counters["events_per_calendar"]["alice@contoso.onmicrosoft.com/Calendar"] == 1
    assert all(name.startswith("graph.") for name in counters["counts"])
    gw.sim.counters.incr("identity.token")  # another side's counter survives a Graph reset
    assert g.post(f"{C}/counters/reset", None, {}).status == 200
    assert g.get(f"{C}/counters").body["counts"] == {}
    assert gw.sim.counters.snapshot()["counts"] == {"identity.token": 1}

    assert g.post(f"{C}/reset", None, {}).status == 200
    snap = gw.state.throttle.snapshot()
    assert snap["limits"]["concurrency"] == 4 and snap["latency"]["fixed_ms"] == 0
    assert g.get(f"{C}/nowhere").status == 404
