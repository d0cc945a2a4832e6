"""The batch executor against the real HTTPS simulator: Outlook's concurrency rules, per-item retries inside a 200
envelope, envelope failures, dropped connections with transactionId, token refresh, idempotent deletes.

Concurrency is measured twice: by the simulator (per-mailbox in-flight peaks and concurrency 429s, which is what
Outlook enforces) and by a transport adapter on the client's session that counts `$batch` requests in flight,
overall and per mailbox. Waits are observed through an injected clock and sleep, so Retry-After is proven
without the test sleeping it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from requests.adapters import HTTPAdapter

from shared.graph.batch import BatchExecutor, GraphRequest
from shared.graph.client import GraphClient
from simulator.graph.state import GraphState, attach_graph
from simulator.testing import RunningSimulator, http_session

CLIENT_ID = "0b6a3c1e-5f4d-4a7b-9c2e-1d8f7e6a5b40"
SCOPES = frozenset({"Calendars.ReadWrite", "Calendars.ReadWrite.Shared"})


class InflightAdapter(HTTPAdapter):
    """Counts `$batch` requests on the wire: overall, per mailbox (from the items' URLs), and when each was sent."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.now, self.peak = 0, 0
        self.per_mailbox: Counter[str] = Counter()
        self.peak_per_mailbox: Counter[str] = Counter()
        self.sent_at: list[float] = []

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        items = json.loads(request.body)["requests"]
        mailbox = items[0]["url"].split("/")[2].lower()
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.per_mailbox[mailbox] += 1
            self.peak_per_mailbox[mailbox] = max(self.peak_per_mailbox[mailbox], self.per_mailbox[mailbox])
            if self.clock is not None:
                self.sent_at.append(self.clock())
        try:
            return super().send(request, *args, **kwargs)
        finally:
            with self.lock:
                self.now -= 1
                self.per_mailbox[mailbox] -= 1


@dataclass
class FakeTime:
    """Monotonic time that only moves when the executor sleeps; every wait is recorded."""

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)
    also: Callable[[float], Any] | None = None  # e.g. the simulator's clock, moved along

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if self.also is not None:
            self.also(seconds)


@dataclass
class Env:
    simulator: RunningSimulator
    graph: GraphState
    tenant_id: str
    staff_id: str
    client: GraphClient
    wire: InflightAdapter

    def room(self, name: str) -> str:
        address = f"{name}@contoso.onmicrosoft.com"
        room = self.simulator.sim.directory.add_user(self.tenant_id, address, name, kind="room")
        self.simulator.sim.directory.grant_mailbox(self.staff_id, room.id, "full_access")
        return address

    def access_token(self) -> str:
        return self.simulator.sim.tokens.issue(client_id=CLIENT_ID, tenant_id=self.tenant_id, user_id=self.staff_id,
                                               scopes=SCOPES).token

    def token(self) -> Callable[[bool], str]:
        value = self.access_token()
        return lambda force_refresh: value

    def counts(self) -> dict[str, int]:
        return self.graph.counter_snapshot()["counts"]

    def peak(self, mailbox: str) -> int:
        return self.graph.counter_snapshot()["peaks"].get(f"graph.inflight.{mailbox.lower()}", 0)

    def subjects(self, mailbox: str) -> Counter[str]:
        return Counter(e["subject"] for e in self.graph.list_events(mailbox))


@pytest.fixture
def env(simulator: RunningSimulator) -> Env:
    sim = simulator.sim
    tenant = sim.directory.add_tenant("Contoso", "contoso.onmicrosoft.com")
    staff = sim.directory.add_user(tenant.id, "marge@contoso.onmicrosoft.com", "Marge")
    session = http_session(simulator.ca_path)
    wire = InflightAdapter()
    session.mount("https://", wire)
    return Env(simulator, attach_graph(sim), tenant.id, staff.id, GraphClient(f"{simulator.url}/v1.0", session), wire)


def creates(mailbox: str, n: int, tag: str = "b") -> list[GraphRequest]:
    """Creates with a transactionId each, as the export does, so a resent create cannot duplicate."""
    out = []
    for i in range(n):
        day = 1 + i % 28
        body = {"subject": f"{tag}{i}", "transactionId": f"{tag}-{mailbox}-{i}",
                "start": {"dateTime": f"2030-03-{day:02d}T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": f"2030-03-{day:02d}T10:00:00", "timeZone": "UTC"}}
        out.append(GraphRequest(f"{tag}{i}", "POST", f"/users/{mailbox}/events", body))
    return out


def test_two_hundred_creates_fill_ten_batches_within_the_mailbox_allowance(env: Env) -> None:
    room = env.room("hall")
    env.graph.set_latency(20)
    executor = BatchExecutor(env.client)
    results = executor.run(env.token(), room, creates(room, 200))
    assert [r.id for r in results] == [f"b{i}" for i in range(200)]
    assert all(r.status == 201 and r.attempts == 1 and r.body["subject"] == r.id for r in results)
    assert env.subjects(room) == Counter({f"b{i}": 1 for i in range(200)})
    assert executor.stats.round_trips == 10 and executor.stats.batches == 10
    assert executor.stats.snapshot()["items_sent"] == 200 and executor.stats.retried_items == 0
    assert env.peak(room) == 4  # saturated, never exceeded
    assert env.counts().get("graph.throttled.concurrency", 0) == 0
    assert env.counts()["graph.batch.items"] == 200


def test_run_many_overlaps_mailboxes_but_never_batches_of_one_mailbox(env: Env) -> None:
    rooms = [env.room(f"room{i}") for i in range(4)]
    env.graph.set_latency(20)
    token = env.token()
    work = [(token, room, creates(room, 40)) for room in rooms]
    work.append((token, rooms[0], creates(rooms[0], 20, tag="second")))  # a second thread on the same mailbox
    executor = BatchExecutor(env.client)
    results = executor.run_many(work)
    assert [len(r) for r in results] == [40, 40, 40, 40, 20]
    assert all(r.status == 201 for batch in results for r in batch)
    assert [len(env.graph.list_events(room)) for room in rooms] == [60, 40, 40, 40]
    assert executor.stats.round_trips == 9  # 4 x 2 + 1
    assert env.wire.peak >= 2  # mailboxes ran in parallel, not one after another
    assert max(env.wire.peak_per_mailbox.values()) == 1  # one batch per mailbox at a time, even across threads
    assert all(env.peak(room) <= 4 for room in rooms)
    assert env.counts().get("graph.throttled.concurrency", 0) == 0


def test_a_429_bars_the_mailbox_until_its_retry_after_then_everything_goes(env: Env) -> None:
    """Graph limits the client's further requests to a throttled mailbox until the Retry-After is up (the
    simulator refuses them again), so the executor sends nothing more there meanwhile, fresh items included."""
    room = env.room("hall")
    fake = FakeTime(also=env.simulator.sim.clock.advance)
    env.wire.clock = fake.clock
    env.graph.add_fault("429", count=1, method="POST", path_contains="/events", retry_after=3)
    executor = BatchExecutor(env.client, sleep=fake.sleep, clock=fake.clock, wall=fake.clock)
    results = executor.run(env.token(), room, creates(room, 45))
    assert all(r.status == 201 for r in results)
    assert env.subjects(room) == Counter({f"b{i}": 1 for i in range(45)})
    assert fake.waits == [3.0]  # one wait for the mailbox, not one per item
    assert env.wire.sent_at[0] == 1000.0 and all(t >= 1003.0 for t in env.wire.sent_at[1:])
    throttled = executor.stats.throttled_items
    assert throttled >= 1 and executor.stats.retried_items == throttled
    assert executor.stats.round_trips == 1 + -(-(25 + throttled) // 20)  # then full batches, nothing sent early
    # Items of the first batch answered after the fault were refused as sent before the Retry-After was up;
    # nothing was sent after the first batch until it was.
    assert env.counts().get("graph.throttled", 0) == throttled - 1


def test_a_retry_after_over_max_wait_hands_the_run_back_and_nothing_is_sent_before_it_is_up(env: Env) -> None:
    room = env.room("hall")
    fake = FakeTime(also=env.simulator.sim.clock.advance)
    env.graph.add_fault("429", count=1, method="POST", path_contains="/events", retry_after=120)
    executor = BatchExecutor(env.client, sleep=fake.sleep, clock=fake.clock, wall=fake.clock)
    results = executor.run(env.token(), room, creates(room, 30))
    assert fake.waits == []  # not slept in-process, not cut short to 30 s either
    assert executor.stats.round_trips == 1
    assert {(r.status, r.error_code) for r in results} == {(429, "ApplicationThrottled")}
    assert all(r.retry_after == pytest.approx(120, abs=1) for r in results)
    assert sorted(r.attempts for r in results) == [0] * 10 + [1] * 20  # the second batch was never sent
    assert executor.throttled_for(room) == pytest.approx(120, abs=1)

    fake.sleep(60)  # another run for the mailbox, before the time is up: handed back without a request
    again = executor.run(env.token(), room, creates(room, 30))
    assert executor.stats.round_trips == 1
    assert all(r.status == 429 and r.retry_after == pytest.approx(60, abs=1) for r in again)

    fake.sleep(60)
    done = executor.run(env.token(), room, creates(room, 30))
    assert all(r.status == 201 for r in done) and executor.stats.round_trips == 3
    assert env.subjects(room) == Counter({f"b{i}": 1 for i in range(30)})
    assert env.counts().get("graph.throttled", 0) == 19  # the first batch's others, answered after the fault


def test_an_item_is_never_sent_after_its_send_by(env: Env) -> None:
    room = env.room("hall")
    fake = FakeTime(also=env.simulator.sim.clock.advance)
    env.graph.add_fault("503", count=1, method="POST", path_contains="/events", retry_after=5)
    executor = BatchExecutor(env.client, sleep=fake.sleep, clock=fake.clock, wall=fake.clock)
    late = [GraphRequest(r.id, r.method, r.url, r.body, send_by=fake.now + 2) for r in creates(room, 2)]
    results = executor.run(env.token(), room, late)
    by_status = sorted((r.status, r.error_code, r.attempts) for r in results)
    assert by_status == [(0, "SendWindowClosed", 1), (201, None, 1)]
    assert executor.stats.round_trips == 1 and fake.waits == []


def test_503_waits_its_retry_after_and_504_backs_off(env: Env) -> None:
    room = env.room("hall")
    fake = FakeTime()
    env.graph.add_fault("503", count=2, method="POST", path_contains="/events")  # Retry-After: 1
    env.graph.add_fault("504", count=2, method="POST", path_contains="/events")  # no Retry-After
    executor = BatchExecutor(env.client, sleep=fake.sleep, clock=fake.clock)
    results = executor.run(env.token(), room, creates(room, 10))
    assert all(r.status == 201 for r in results)
    assert env.subjects(room) == Counter({f"b{i}": 1 for i in range(10)})
    assert executor.stats.round_trips == 3  # the 504s come back first (backoff < 1 s), then the 503s
    assert len(fake.waits) == 2
    assert 0.25 <= fake.waits[0] <= 0.5  # backoff(1): 0.5 s halved plus jitter
    assert sum(fake.waits) == pytest.approx(1.0)


@pytest.mark.parametrize(("kind", "path"), [
    ("timeout_after_commit", "/events"),  # every item ran, the answer was lost
    ("reset", "/events"),  # the other items ran, one never did, the connection dropped
    ("timeout_after_commit", "$batch"),
    ("reset", "$batch"),  # nothing ran
])
def test_a_dropped_connection_is_resent_without_duplicates(env: Env, kind: str, path: str) -> None:
    room = env.room("hall")
    fake = FakeTime()
    env.graph.add_fault(kind, count=1, method="POST", path_contains=path)
    executor = BatchExecutor(env.client, sleep=fake.sleep, clock=fake.clock)
    results = executor.run(env.token(), room, creates(room, 8))
    assert all(r.status == 201 and r.attempts == 2 for r in results)
    assert env.subjects(room) == Counter({f"b{i}": 1 for i in range(8)})
    assert len({r.body["id"] for r in results}) == 8
    assert executor.stats.transport_errors == 1 and executor.stats.round_trips == 2
    assert len(fake.waits) == 1


def test_a_rejected_token_is_refreshed_once(env: Env) -> None:
    room = env.room("hall")
    calls: list[bool] = []
    current = {"token": "sim-at.not-a-token"}

    def source(force_refresh: bool) -> str:
        calls.append(force_refresh)
        if force_refresh:
            current["token"] = env.access_token()
        return current["token"]

    executor = BatchExecutor(env.client)
    results = executor.run(source, room, creates(room, 25))
    assert all(r.status == 201 for r in results)
    assert len(env.graph.list_events(room)) == 25
    assert calls.count(True) == 1
    assert executor.stats.token_refreshes == 1 and executor.stats.round_trips == 3


def test_a_token_refused_after_refresh_is_final(env: Env) -> None:
    room = env.room("hall")
    calls: list[bool] = []

    def source(force_refresh: bool) -> str:
        calls.append(force_refresh)
        return "sim-at.revoked"

    executor = BatchExecutor(env.client)
    results = executor.run(source, room, creates(room, 3))
    assert {(r.status, r.error_code) for r in results} == {(401, "InvalidAuthenticationToken")}
    assert calls.count(True) == 1 and executor.stats.round_trips == 2
    assert env.graph.list_events(room) == []


def test_deletes_are_idempotent_and_missing_reads_are_final(env: Env) -> None:
    room = env.room("hall")
    body = {"subject": "x", "start": {"dateTime": "2030-03-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-03-01T10:00:00", "timeZone": "UTC"}}
    live = env.graph.create_event(room, body)["id"]
    doomed = env.graph.create_event(room, {**body, "subject": "y"})["id"]
    gone = env.graph.create_event(room, {**body, "subject": "z"})["id"]
    env.graph.delete_event(gone)
    executor = BatchExecutor(env.client)
    results = {r.id: r for r in executor.run(env.token(), room, [
        GraphRequest("del-gone", "DELETE", f"/users/{room}/events/{gone}"),
        GraphRequest("del-live", "DELETE", f"/users/{room}/events/{doomed}"),
        GraphRequest("get-live", "GET", f"/users/{room}/events/{live}"),
        GraphRequest("get-missing", "GET", f"/users/{room}/events/{gone}"),
        GraphRequest("patch", "PATCH", f"/users/{room}/events/{live}", {"subject": "renamed"}),
    ])}
    assert (results["del-gone"].status, results["del-gone"].gone, results["del-gone"].body) == (204, True, None)
    assert (results["del-live"].status, results["del-live"].gone) == (204, False)
    assert results["get-live"].status == 200 and results["get-live"].body["id"] == live
    missing = results["get-missing"]
    assert (missing.status, missing.error_code, missing.attempts) == (404, "ErrorItemNotFound", 1)
    assert results["patch"].status == 200 and results["patch"].body["subject"] == "renamed"
    assert executor.stats.round_trips == 1
    assert [e["subject"] for e in env.graph.list_events(room)] == ["renamed"]


def test_attempts_are_bounded_for_items_and_envelopes(env: Env) -> None:
    room = env.room("hall")
    fake = FakeTime()
    env.graph.add_fault("503", method="POST", path_contains="/events")  # permanent, Retry-After: 1
    executor = BatchExecutor(env.client, max_attempts=3, sleep=fake.sleep, clock=fake.clock)
    results = executor.run(env.token(), room, creates(room, 2))
    assert {(r.status, r.error_code, r.attempts) for r in results} == {(503, "ServiceNotAvailable", 3)}
    assert fake.waits == [1.0, 1.0] and executor.stats.round_trips == 3
    assert env.graph.list_events(room) == []

    env.graph.clear_faults()
    env.graph.add_fault("429", path_contains="$batch", retry_after=4)  # the envelope itself, for ever
    fake.waits.clear()
    executor = BatchExecutor(env.client, max_attempts=3, max_wait=5, sleep=fake.sleep, clock=fake.clock)
    results = executor.run(env.token(), room, creates(room, 2))
    assert {(r.status, r.error_code, r.attempts) for r in results} == {(429, "ApplicationThrottled", 3)}
    assert fake.waits == [4, 4]
    assert executor.stats.envelope_retries == 3

    env.graph.clear_faults()
    env.graph.add_fault("429", path_contains="$batch", retry_after=120)  # longer than max_wait: handed back
    fake.waits.clear()
    executor = BatchExecutor(env.client, max_attempts=3, max_wait=5, sleep=fake.sleep, clock=fake.clock)
    results = executor.run(env.token(), room, creates(room, 2))
    assert {(r.status, r.attempts, r.retry_after) for r in results} == {(429, 1, 120)}
    assert fake.waits == [] and executor.stats.round_trips == 1


def test_global_limit_bounds_batches_in_flight_across_mailboxes(env: Env) -> None:
    rooms = [env.room(f"room{i}") for i in range(5)]
    env.graph.set_latency(20)
    token = env.token()
    executor = BatchExecutor(env.client, global_limit=2)
    results = executor.run_many([(token, room, creates(room, 20)) for room in rooms])
    assert all(r.status == 201 for batch in results for r in batch)
    assert env.wire.peak == 2

    env.wire.reset()  # now five threads of the caller's own, not run_many's pool, share the executor
    threads = [threading.Thread(target=executor.run, args=(token, room, creates(room, 20, tag="t")))
               for room in rooms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert env.wire.peak == 2
    assert [len(env.graph.list_events(room)) for room in rooms] == [40] * 5
    assert all(env.peak(room) <= 4 for room in rooms)
    assert env.counts().get("graph.throttled.concurrency", 0) == 0
