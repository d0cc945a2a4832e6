"""JSON batching: limits, per-item statuses, dependsOn, per-item throttling, four-at-a-time execution."""

from __future__ import annotations

import threading
import time

import pytest

from simulator.core import DropConnection
from tests.simulator.test_graph_support import (
    World,
    build_world,
    event_body,
)

ROOM = "/users/room1@contoso.onmicrosoft.com"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def gw() -> World:
    return build_world()


def create_item(i: int, **extra: object) -> dict[str, object]:
    return {"id": str(i), "method": "POST", "url": f"{ROOM}/events", "headers": JSON,
            "body": event_body(f"b{i}", f"2030-01-{1 + i % 28:02d}T09:00:00", f"2030-01-{1 + i % 28:02d}T10:00:00"),
            **extra}


def test_batch_of_twenty_with_mixed_statuses(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    existing = g.post(f"{ROOM}/events", t, event_body("existing")).body["id"]
    requests = [create_item(i) for i in range(1, 16)]
    requests += [
        {"id": "get", "method": "GET", "url": f"users/room1@contoso.onmicrosoft.com/events/{existing}"},
        {"id": "missing", "method": "GET", "url": f"{ROOM}/events/AAMkAnope="},
        {"id": "after-missing", "method": "DELETE", "url": f"{ROOM}/events/{existing}", "dependsOn": ["missing"]},
        {"id": "view", "method": "GET",
         "url": f"{ROOM}/calendarView?startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-02-01T00:00:00Z&$top=3"},
        {"id": "forbidden", "method": "GET", "url": "/users/bob@contoso.onmicrosoft.com/calendar"},
    ]
    reply = g.post("/$batch", t, {"requests": requests})
    assert reply.status == 200
    by_id = {r["id"]: r for r in reply.body["responses"]}
    assert len(by_id) == 20
    assert all(by_id[str(i)]["status"] == 201 for i in range(1, 16))
    assert by_id["1"]["body"]["subject"] == "b1" and by_id["1"]["headers"]["Content-Type"].startswith(
        "application/json")
    assert by_id["get"]["status"] == 200 and by_id["get"]["body"]["id"] == existing
    assert by_id["missing"]["status"] == 404 and by_id["missing"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert by_id["after-missing"]["status"] == 424
    assert len(by_id["view"]["body"]["value"]) == 3 and "@odata.nextLink" in by_id["view"]["body"]
    assert by_id["forbidden"]["status"] == 403
    assert g.get(f"{ROOM}/events/{existing}", t).status == 200  # the dependent delete never ran
    counts = gw.state.counter_snapshot()
    assert counts["counts"]["graph.batch"] == 1 and counts["series"]["graph.batch.size"] == [20]


def test_batch_limits_and_malformed_payloads(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    assert g.post("/$batch", t, {"requests": [create_item(i) for i in range(21)]}).status == 400
    assert g.post("/$batch", t, {"requests": []}).status == 400
    assert g.post("/$batch", t, {"requests": [create_item(1), create_item(1)]}).status == 400
    assert g.post("/$batch", t, {"requests": [create_item(1, dependsOn=["9"])]}).status == 400
    assert g.post("/$batch", t, {"requests": [create_item(1, dependsOn=["2"]),
                                              create_item(2, dependsOn=["1"])]}).status == 400
    assert g.post("/$batch", None, {"requests": [create_item(1)]}).status == 401
    no_type = {"id": "1", "method": "POST", "url": f"{ROOM}/events", "body": event_body()}
    item = g.post("/$batch", t, {"requests": [no_type]}).body["responses"][0]
    assert item["status"] == 400  # a body needs a Content-Type header
    nested = g.post("/$batch", t, {"requests": [{"id": "1", "method": "POST", "url": "/$batch", "headers": JSON,
                                                 "body": {"requests": []}}]}).body["responses"][0]
    assert nested["status"] == 400


def test_depends_on_runs_in_order(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    requests = [create_item(1, transactionId="x")]
    requests.append({**create_item(2), "dependsOn": ["1"]})
    requests.append({**create_item(3), "dependsOn": ["2"]})
    reply = g.post("/$batch", t, {"requests": requests}).body["responses"]
    assert [r["id"] for r in reply] == ["1", "2", "3"]
    created = [r["body"]["createdDateTime"] for r in reply]
    assert created == sorted(created)


def test_items_are_throttled_one_by_one_inside_a_200_envelope(gw: World) -> None:
    """Saturate the room with four slow requests, then send a batch: its items meet a full mailbox."""
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.set_latency(400)
    blockers = [threading.Thread(target=g.get, args=(f"{ROOM}/calendar", t)) for _ in range(4)]
    for b in blockers:
        b.start()
    time.sleep(0.1)
    state.set_latency(0)
    reply = g.post("/$batch", t, {"requests": [create_item(i) for i in range(1, 6)]})
    for b in blockers:
        b.join()
    assert reply.status == 200
    statuses = [r["status"] for r in reply.body["responses"]]
    assert statuses == [429] * 5
    throttled = reply.body["responses"][0]
    assert throttled["headers"]["Retry-After"] == "1"
    assert throttled["body"]["error"]["code"] == "ApplicationThrottled"
    assert state.counter_snapshot()["counts"]["graph.throttled.concurrency"] == 5


def test_at_most_four_items_of_a_batch_run_at_once(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    latency = 0.1
    state.set_latency(latency * 1000)
    began = time.monotonic()
    reply = g.post("/$batch", t, {"requests": [create_item(i) for i in range(1, 21)]})
    elapsed = time.monotonic() - began
    assert [r["status"] for r in reply.body["responses"]].count(201) == 20
    assert 5 * latency * 0.9 <= elapsed < 5 * latency + 1.0
    assert state.counter_snapshot()["peaks"][f"graph.inflight.{gw.room.address}"] == 4


def test_a_dropped_item_resets_the_batch_after_committing_the_others(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.add_fault("timeout_after_commit", count=1, method="POST", path_contains="/events")
    with pytest.raises(DropConnection):
        g.post("/$batch", t, {"requests": [create_item(i) for i in range(1, 6)]})
    assert len(state.list_events(gw.room.address)) == 5  # all five ran, the answer was lost
    state.add_fault("reset", count=1, path_contains="/events")
    with pytest.raises(DropConnection):
        g.post("/$batch", t, {"requests": [create_item(i) for i in range(6, 9)]})
    assert len(state.list_events(gw.room.address)) == 7  # the reset item never ran


def test_faults_on_the_envelope(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.add_fault("503", count=1, path_contains="$batch", retry_after=7)
    busy = g.post("/$batch", t, {"requests": [create_item(1)]})
    assert busy.status == 503 and busy.headers["Retry-After"] == "7"
    assert state.list_events(gw.room.address) == []
