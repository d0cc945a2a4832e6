"""The Graph simulator over real HTTPS with `requests`: the per-mailbox concurrency limit under 50 concurrent
requests, a `$batch` whose 200 envelope holds per-item statuses including a 429, and a dropped connection."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
import requests

from simulator.testing import RunningSimulator, http_session

CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SCOPES = frozenset({"User.Read", "Calendars.ReadWrite", "Calendars.ReadWrite.Shared", "offline_access"})


def setup_world(running: RunningSimulator) -> dict[str, Any]:
    sim = running.sim
    tenant = sim.directory.add_tenant("Contoso", "contoso.test")
    alice = sim.directory.add_user(tenant.id, "alice@contoso.test", "Alice Anders")
    room = sim.directory.add_user(tenant.id, "room@contoso.test", "Room", kind="room")
    sim.directory.grant_mailbox(alice.id, room.id)
    token = sim.tokens.issue(client_id=CLIENT_ID, tenant_id=tenant.id, user_id=alice.id, scopes=SCOPES).token
    return {"token": token, "room": room, "alice": alice, "graph": f"{running.url}/v1.0",
            "headers": {"Authorization": f"Bearer {token}"}}


def event(subject: str, day: int = 7) -> dict[str, Any]:
    return {"subject": subject, "start": {"dateTime": f"2030-01-{day:02d}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"2030-01-{day:02d}T10:00:00", "timeZone": "UTC"}}


def test_fifty_concurrent_requests_at_one_mailbox_are_served_four_at_a_time(simulator: RunningSimulator) -> None:
    w = setup_world(simulator)
    state = simulator.sim.graph
    # Long enough that all 50 arrive while the first four still hold their slots; only the room is slow.
    state.set_latency(1500, mailbox="room@contoso.test")
    barrier = threading.Barrier(50)
    results: list[tuple[int, str | None, dict[str, Any]]] = []
    lock = threading.Lock()

    def one() -> None:
        session = http_session(simulator.ca_path)
        session.get(f"{simulator.url}/v1.0/me", headers=w["headers"])  # warm the TLS connection (own mailbox)
        barrier.wait()
        reply = session.get(f"{w['graph']}/users/room@contoso.test/calendar", headers=w["headers"])
        with lock:
            results.append((reply.status_code, reply.headers.get("Retry-After"), reply.json()))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: 4, 429: 46}
    throttled = [(retry, body) for status, retry, body in results if status == 429]
    assert all(retry == "1" for retry, _ in throttled)
    assert all(body["error"]["code"] == "ApplicationThrottled" for _, body in throttled)
    counters = state.counter_snapshot()
    assert counters["peaks"]["graph.inflight.room@contoso.test"] == 4
    assert counters["counts"]["graph.throttled.concurrency"] == 46
    assert counters["counts"]["graph.throttled"] == 46
    assert counters["counts"]["graph.calendar.read"] == 4


def test_batch_of_twenty_reports_each_item_including_a_429_inside_the_200(simulator: RunningSimulator) -> None:
    w = setup_world(simulator)
    state = simulator.sim.graph
    state.set_latency(2000, mailbox="room@contoso.test")
    blockers = []
    for _ in range(4):  # four slow requests fill the room's concurrency while the batch runs
        thread = threading.Thread(target=lambda: http_session(simulator.ca_path).get(
            f"{w['graph']}/users/room@contoso.test/calendar", headers=w["headers"]))
        thread.start()
        blockers.append(thread)
    time.sleep(0.5)
    json_headers = {"Content-Type": "application/json"}
    items: list[dict[str, Any]] = [
        {"id": f"own-{i}", "method": "POST", "url": "/me/events", "headers": json_headers, "body": event(f"o{i}", i)}
        for i in range(1, 11)
    ]
    items += [{"id": f"room-{i}", "method": "POST", "url": "/users/room@contoso.test/events",
               "headers": json_headers, "body": event(f"r{i}", i)} for i in range(1, 6)]
    items += [
        {"id": "missing", "method": "GET", "url": "/me/events/AAMkAmissing="},
        {"id": "needs-missing", "method": "DELETE", "url": "/me/events/AAMkAother=", "dependsOn": ["missing"]},
        {"id": "cal", "method": "GET", "url": "me/calendar"},
        {"id": "me", "method": "GET", "url": "/me?$select=mail"},
        {"id": "view", "method": "GET",
         "url": "/me/calendarView?startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-02-01T00:00:00Z"},
    ]
    session = http_session(simulator.ca_path)
    reply = session.post(f"{w['graph']}/$batch", json={"requests": items}, headers=w["headers"])
    for thread in blockers:
        thread.join(timeout=30)
    assert reply.status_code == 200
    by_id = {r["id"]: r for r in reply.json()["responses"]}
    assert len(by_id) == 20
    assert {by_id[f"own-{i}"]["status"] for i in range(1, 11)} == {201}
    room = [by_id[f"room-{i}"] for i in range(1, 6)]
    assert {r["status"] for r in room} == {429}
    assert all(r["headers"]["Retry-After"] == "1" and r["body"]["error"]["code"] == "ApplicationThrottled"
               for r in room)
    assert by_id["missing"]["status"] == 404 and by_id["needs-missing"]["status"] == 424
    assert by_id["cal"]["status"] == 200 and by_id["me"]["body"]["mail"] == "alice@contoso.test"
    assert by_id["view"]["status"] == 200
    counters = state.counter_snapshot()
    assert counters["series"]["graph.batch.size"] == [20]
    assert counters["counts"]["graph.throttled.concurrency"] == 5
    assert counters["events_per_calendar"]["room@contoso.test/Calendar"] == 0
    assert counters["events_per_calendar"]["alice@contoso.test/Calendar"] == 10


def test_dropped_connection_after_commit_then_idempotent_retry(simulator: RunningSimulator) -> None:
    w = setup_world(simulator)
    state = simulator.sim.graph
    state.add_fault("timeout_after_commit", count=1, method="POST")
    session = http_session(simulator.ca_path)
    body = {**event("Booking 1"), "transactionId": "booking-1-slot-1"}
    with pytest.raises(requests.ConnectionError):
        session.post(f"{w['graph']}/users/room@contoso.test/events", json=body, headers=w["headers"])
    retry = http_session(simulator.ca_path).post(f"{w['graph']}/users/room@contoso.test/events", json=body,
                                                 headers=w["headers"])
    assert retry.status_code == 201
    assert [e["defaultId"] for e in state.list_events("room@contoso.test")] == [retry.json()["id"]]
    assert retry.headers["request-id"] and retry.headers["client-request-id"]
