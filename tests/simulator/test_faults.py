"""Fault injection: each kind, counted and probabilistic rules, filters, and what a retry then sees."""

from __future__ import annotations

import pytest

from simulator.core import DropConnection
from simulator.faults import FaultInjector
from tests.simulator.test_graph_support import World, build_world, event_body

ROOM = "/users/room1@contoso.onmicrosoft.com"


@pytest.fixture
def gw() -> World:
    return build_world()


def test_counted_rules_fire_the_next_n_matching_requests_then_go_away() -> None:
    faults = FaultInjector()
    faults.add("503", count=2, method="POST", path_contains="/events")
    assert faults.pick("GET", "/v1.0/me/events") is None  # method filter
    assert faults.pick("POST", "/v1.0/me/calendars") is None  # path filter
    assert faults.pick("POST", "/v1.0/me/events").kind == "503"  # type: ignore[union-attr]
    assert faults.pick("post", "/v1.0/me/EVENTS").kind == "503"  # type: ignore[union-attr]
    assert faults.pick("POST", "/v1.0/me/events") is None
    assert faults.rules() == []


def test_probability_is_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        faults = FaultInjector(seed)
        faults.add("429", probability=0.3)
        return [faults.pick("GET", "/v1.0/me") is not None for _ in range(200)]

    assert run(1) == run(1)
    assert 30 <= sum(run(1)) <= 90
    assert run(1) != run(2)


def test_probability_with_a_count_stops_after_n_faults() -> None:
    faults = FaultInjector(3)
    faults.add("reset", probability=0.5, count=3)
    fired = sum(faults.pick("GET", "/x") is not None for _ in range(100))
    assert fired == 3


def test_unknown_kinds_and_aliases() -> None:
    faults = FaultInjector()
    with pytest.raises(ValueError):
        faults.add("explode")
    assert faults.add("throttle").kind == "429"
    assert faults.add("gateway_timeout").kind == "504"


@pytest.mark.parametrize(("kind", "status", "code"), [
    ("429", 429, "ApplicationThrottled"), ("503", 503, "ServiceNotAvailable"), ("504", 504, "GatewayTimeout"),
])
def test_status_faults_answer_graph_errors_and_do_no_work(gw: World, kind: str, status: int, code: str) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.add_fault(kind, count=1, retry_after=3)
    reply = g.post(f"{ROOM}/events", t, event_body())
    assert (reply.status, reply.error) == (status, code)
    if status in (429, 503):
        assert reply.headers["Retry-After"] == "3"
    assert state.list_events(gw.room.address) == []
    if status == 429:  # the mailbox stays throttled until the Retry-After is up
        gw.sim.clock.advance(3)
    assert g.post(f"{ROOM}/events", t, event_body()).status == 201
    counts = state.counter_snapshot()["counts"]
    assert counts[f"graph.faults.{kind}"] == 1
    assert counts.get("graph.throttled", 0) == 0  # injected faults are not throttling violations


def test_reset_drops_the_connection_before_doing_the_work(gw: World) -> None:
    state = gw.state
    state.add_fault("reset", count=1, method="POST")
    with pytest.raises(DropConnection):
        gw.graph.post(f"{ROOM}/events", gw.alice_token, event_body())
    assert state.list_events(gw.room.address) == []


def test_timeout_after_commit_creates_the_event_and_a_transaction_id_retry_finds_it(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.add_fault("timeout_after_commit", count=1, method="POST", path_contains="/events")
    body = event_body("Booking 9", transactionId="booking-9-slot-1")
    with pytest.raises(DropConnection):
        g.post(f"{ROOM}/events", t, body)
    assert len(state.list_events(gw.room.address)) == 1  # committed, though the client never heard
    retry = g.post(f"{ROOM}/events", t, body)
    assert retry.status == 201
    assert [e["defaultId"] for e in state.list_events(gw.room.address)] == [retry.body["id"]]


def test_faults_survive_only_until_cleared(gw: World) -> None:
    state = gw.state
    state.add_fault("503")
    assert gw.graph.get("/me", gw.alice_token).status == 503
    assert gw.graph.get("/me", gw.alice_token).status == 503
    state.clear_faults()
    assert gw.graph.get("/me", gw.alice_token).status == 200
