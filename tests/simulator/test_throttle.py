"""Outlook throttling: at most 4 in flight per (app, mailbox), a 10-minute request budget, latency in the slot."""

from __future__ import annotations

import threading
import time

import pytest

from simulator.clock import Clock
from simulator.counters import Counters
from simulator.throttle import Throttle
from tests.simulator.test_graph_support import World, build_world, event_body

ROOM = "/users/room1@contoso.onmicrosoft.com"


@pytest.fixture
def gw() -> World:
    return build_world()


def make() -> Throttle:
    return Throttle(Clock(), Counters())


def test_fifth_concurrent_request_is_refused_and_slots_are_per_app_and_mailbox() -> None:
    throttle = make()
    for _ in range(4):
        assert throttle.try_acquire("app", "room@x") is None
    refused = throttle.try_acquire("app", "room@x")
    assert refused is not None and refused.reason == "concurrency" and refused.retry_after == 1
    assert "MailboxConcurrency" in refused.message
    assert throttle.try_acquire("other-app", "room@x") is None  # another app has its own four
    assert throttle.try_acquire("app", "other-room@x") is None  # another mailbox too
    throttle.release("app", "room@x")
    assert throttle.try_acquire("app", "ROOM@X") is None  # addresses are case-insensitive
    snap = throttle.counters.snapshot()
    assert snap["counts"]["graph.throttled.concurrency"] == 1
    assert snap["peaks"]["graph.inflight.room@x"] == 4


def test_budget_counts_throttled_requests_and_retry_after_points_at_the_window_end() -> None:
    throttle = make()
    throttle.configure(budget=5, window_seconds=600)
    for _ in range(4):
        assert throttle.try_acquire("app", "m") is None
    assert throttle.try_acquire("app", "m").reason == "concurrency"  # type: ignore[union-attr]  # 5th counts
    for _ in range(4):
        throttle.release("app", "m")
    over = throttle.try_acquire("app", "m")
    assert over is not None and over.reason == "budget" and 598 <= over.retry_after <= 600
    throttle.clock.advance(300)
    assert throttle.try_acquire("app", "m").retry_after in (299, 300)  # type: ignore[union-attr]
    throttle.clock.advance(301)
    assert throttle.try_acquire("app", "m") is None  # a new window
    assert throttle.counters.snapshot()["counts"]["graph.throttled.budget"] == 2


def test_latency_is_spent_holding_the_slot_and_includes_the_work_inside_it() -> None:
    throttle = make()
    throttle.set_latency(150, 0)
    answered: list[float] = []

    def one() -> None:
        with throttle.slot("app", "m") as rejection:
            if rejection is None:
                time.sleep(0.1)  # the simulator's own work: part of the 150 ms, not added to it
        if rejection is None:
            answered.append(time.monotonic())

    threads = [threading.Thread(target=one) for _ in range(6)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answered) == 4  # two arrived while four held their slots
    assert all(0.14 <= stamp - began < 0.24 for stamp in answered), [stamp - began for stamp in answered]
    assert throttle.snapshot()["keys"]["app|m"]["in_flight"] == 0


def test_jitter_is_seedable_and_per_mailbox_latency_overrides() -> None:
    a, b = make(), make()
    a.set_latency(10, 50, seed=7)
    b.set_latency(10, 50, seed=7)
    assert [a._delay("m") for _ in range(5)] == [b._delay("m") for _ in range(5)]
    a.set_latency(500, 0, mailbox="slow@x")
    assert a._delay("slow@x") == 0.5 and 0.01 <= a._delay("m") < 0.06


def test_thread_safety_under_contention() -> None:
    throttle = make()
    throttle.configure(budget=1_000_000)
    admitted = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(500):
            if throttle.try_acquire("app", "m") is None:
                with lock:
                    admitted.append(1)
                throttle.release("app", "m")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = throttle.snapshot()["keys"]["app|m"]
    assert snap["in_flight"] == 0 and snap["count"] == 4000 and snap["peak"] <= 4
    throttled = throttle.counters.snapshot()["counts"].get("graph.throttled", 0)
    assert len(admitted) + throttled == 4000


def test_budget_exhaustion_through_graph(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.set_throttling(budget=3)
    assert [g.get(f"{ROOM}/calendar", t).status for _ in range(3)] == [200] * 3
    over = g.post(f"{ROOM}/events", t, event_body())
    assert (over.status, over.error) == (429, "ApplicationThrottled")
    assert 1 <= int(over.headers["Retry-After"]) <= 600
    assert g.get("/me/calendar", t).status == 200  # Alice's own mailbox has its own budget
    gw.sim.clock.advance(601)
    assert g.get(f"{ROOM}/calendar", t).status == 200
    counts = state.counter_snapshot()["counts"]
    assert counts["graph.throttled.budget"] == 1 and counts["graph.status.429"] == 1
    assert state.list_events(gw.room.address) == []  # the refused create did nothing


def test_throttling_can_be_switched_off_for_setup(gw: World) -> None:
    gw.state.set_throttling(budget=1, enabled=False)
    assert all(gw.graph.get("/me", gw.alice_token).status == 200 for _ in range(5))


def test_a_request_before_the_retry_after_is_up_is_throttled_again_and_counted() -> None:
    throttle = make()
    throttle.block("app", "m", 120)
    early = throttle.try_acquire("app", "M")
    assert early is not None and early.reason == "blocked" and early.retry_after == 120
    assert throttle.try_acquire("other-app", "m") is None  # per app and mailbox
    assert throttle.try_acquire("app", "other") is None
    throttle.clock.advance(100)
    assert throttle.try_acquire("app", "m").retry_after == 20  # type: ignore[union-attr]  # what is left
    throttle.clock.advance(20)
    assert throttle.try_acquire("app", "m") is None
    snap = throttle.snapshot()["keys"]["app|m"]
    assert snap["count"] == 3  # the refused requests count against the budget too
    assert throttle.counters.snapshot()["counts"]["graph.throttled.blocked"] == 2


def test_an_injected_429_bars_the_mailbox_for_its_retry_after(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.add_fault("429", count=1, method="POST", path_contains="/events", retry_after=120)
    first = g.post(f"{ROOM}/events", t, event_body())
    assert (first.status, first.headers["Retry-After"]) == (429, "120")
    gw.sim.clock.advance(119)
    again = g.get(f"{ROOM}/calendar", t)  # any request to the mailbox, not only the one refused
    assert (again.status, again.headers["Retry-After"]) == (429, "1")
    assert g.get("/me/calendar", t).status == 200  # other mailboxes are not barred
    gw.sim.clock.advance(1)
    assert g.post(f"{ROOM}/events", t, event_body()).status == 201
    assert len(state.list_events(gw.room.address)) == 1


def test_duplicate_transaction_fault_accepts_a_second_create_with_the_same_transaction_id(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    body = {**event_body(), "transactionId": "txn-1"}
    assert g.post(f"{ROOM}/events", t, body).status == 201
    assert g.post(f"{ROOM}/events", t, body).status == 201  # a replay: the same event
    assert len(state.list_events(gw.room.address)) == 1
    state.add_fault("duplicate_transaction", probability=1.0, method="POST", path_contains="/events")
    assert g.post(f"{ROOM}/events", t, body).status == 201
    assert len(state.list_events(gw.room.address)) == 2  # what a peer saw on real Graph
