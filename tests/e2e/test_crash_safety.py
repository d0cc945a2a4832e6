"""Crash safety: the app process is SIGKILLed at random points while it runs a bulk export or a room pull, then
started again; every run must end with exactly the expected result.

- Export: one event per occurrence (markers unique), also for jobs that re-assert events deleted or retitled
  in Outlook ("all").
- Pull: every change made in Outlook is in the feed exactly once, with no gap in its sequence; the product's
  own events never appear as external events.

Kill times are random from one seed, printed at the start (`CRASH_SEED=<n>` replays a run's choices; the
actual kill points also depend on timing, so each run prints where its kill landed).

How a pull recovers: a pull holds nothing while it runs (each of its transactions is conditional on the room's
state as it read it), so a killed pull leaves at most a committed prefix of its changes. The queue gives its
message back after the host's lease (here `DEVSTACK_QUEUE_LEASE_SECONDS`) and the restarted app pulls the room
then, well before the next timer tick (every 5 minutes, `PULL_SCHEDULE`): the test waits for that redelivered
pull and checks the feed.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from devstack.ports import free_port
from shared.export.content import MARKER_ID
from shared.models import connection_partition
from shared.pull import PULL_QUEUE
from shared.runtime import Services, build_services
from shared.settings import Settings
from tests.e2e.processes import AppProcess, OutlookRoom, app_env, isolated_storage
from tests.helpers import configure, connect, make_directory, new_system
from tests.integration.test_bulk_export import items
from tests.integration.test_pull import booking

SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1, 1_000_000))
EXPORT_RUNS = 12
PULL_RUNS = 10
OCCURRENCES = 120
QUEUE_LEASE_SECONDS = 2  # a killed worker's queue message is visible again after this


@dataclass
class CrashStack:
    app: AppProcess
    services: Services  # the product's services in the test process, on the app's storage
    storage: Any
    restarts: list[float]

    def restart(self) -> None:
        self.restarts.append(self.app.start())

    def clear_queue(self, queue: str) -> None:
        QueueClient.from_connection_string(self.storage.connection_string, queue).clear_messages()

    def queue_length(self, queue: str) -> int:
        client = QueueClient.from_connection_string(self.storage.connection_string, queue)
        return int(client.get_queue_properties().approximate_message_count or 0)


@pytest.fixture
def crash_stack(app, tmp_path) -> Iterator[CrashStack]:
    print(f"\ncrash-safety seed {SEED} (replay with CRASH_SEED={SEED})")
    with isolated_storage() as storage:
        port = free_port()
        env = app_env(app.env, storage, f"http://127.0.0.1:{port}",
                      DEVSTACK_QUEUE_LEASE_SECONDS=str(QUEUE_LEASE_SECONDS))
        process = AppProcess(env, port, tmp_path / "app.log")
        stack = CrashStack(process, build_services(Settings.from_env(env)), storage, [])
        stack.restart()
        try:
            yield stack
        finally:
            process.stop()


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"seed {SEED}: timed out after {timeout:.0f} s waiting for {what}")


# --- bulk export ---------------------------------------------------------------------------------------------


def run_events(simulator, mailbox: str, prefix: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The mailbox's events of one run's items (by their markers), and those markers."""
    events, values = [], []
    for event in simulator.sim.graph.list_events(mailbox):
        for prop in event.get("singleValueExtendedProperties", []):
            if prop["id"] == MARKER_ID and f";{prefix}-" in prop["value"]:
                events.append(event)
                values.append(prop["value"])
    return events, values


def test_bulk_exports_killed_at_random_points_end_with_one_event_per_occurrence(simulator, crash_stack):
    stack, rng = crash_stack, random.Random(SEED)
    api = stack.app.api()
    d = make_directory(simulator, f"{stack.app.url}/api/oauth/callback")
    system = new_system()
    configure(api, system, d)
    connect(api, simulator, system, "user", "u1", d.staff)
    simulator.sim.graph.set_latency(4, 2, seed=SEED)
    base = f"/api/systems/{system}/connections/user/u1/exports"
    partition = connection_partition(system, "user", "u1")

    def start(payload: list[dict[str, Any]], mode: str) -> tuple[str, float]:
        """Start a job; returns it and the moment its first Graph request arrived (monotonic)."""
        requests_before = simulator.sim.counters.snapshot()["counts"].get("graph.requests", 0)
        started = api.post(base, json={"mode": mode, "items": payload})
        assert started.status_code == 202, started.text
        wait_until(lambda: simulator.sim.counters.snapshot()["counts"].get("graph.requests", 0) > requests_before,
                   30, "the job's first Graph request", interval=0.001)
        return started.json()["job"], time.monotonic()

    def completed(job: str, timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            status = api.get(f"{base}/{job}").json()
            return status if status.get("state", "").startswith("completed") else None

        return wait_until(done, timeout, f"job {job} to complete", interval=0.1)

    # How long a job's Graph and storage work takes here, uninterrupted: kill times are drawn over it.
    job, first_request = start(items(OCCURRENCES, prefix="calib"), "not_exported")
    wait_until(lambda: stack.services.repos.export_chunks.get(job, "000000").state == "done", 30,
               "the calibration job", interval=0.005)
    duration = time.monotonic() - first_request
    completed(job)
    print(f"uninterrupted export of {OCCURRENCES} occurrences: {duration * 1000:.0f} ms from the first Graph request")

    runs: list[str] = []
    previous: str | None = None
    began = time.monotonic()
    for run in range(EXPORT_RUNS):
        if previous is not None and rng.random() < 0.4:
            # "all" over the previous run's items, after Outlook-side deletions and retitles.
            prefix, mode = previous, "all"
            touched = rng.sample(sorted(e["id"] for e in run_events(simulator, d.staff, prefix)[0]), 15)
            for event_id in touched[:10]:
                simulator.sim.graph.delete_event(event_id)
            for event_id in touched[10:]:
                simulator.sim.graph.update_event(event_id, {"subject": "Changed in Outlook"})
        else:
            prefix, mode = f"run{run}", "not_exported"
        delay = rng.uniform(0, duration * 1.5)
        job, first_request = start(items(OCCURRENCES, prefix=prefix), mode)
        time.sleep(max(0.0, first_request + delay - time.monotonic()))
        stack.app.kill()
        at_kill = len(run_events(simulator, d.staff, prefix)[0])
        recorded = sum(1 for r in stack.services.repos.sync_records.partition(partition)
                       if r.item_id.startswith(f"{prefix}-") and r.event_id)
        chunk_done = stack.services.repos.export_chunks.get(job, "000000").state == "done"
        stack.restart()
        status = completed(job)
        events, values = run_events(simulator, d.staff, prefix)
        where = (f"run {run} ({mode}): killed {delay * 1000:.0f} ms after the first Graph request with "
                 f"{at_kill} events in Outlook, {recorded} recorded, chunk {'done' if chunk_done else 'not done'}")
        runs.append(where)
        print(where)
        context = f"seed {SEED}, {where}\n{stack.app.errors()}"
        assert (status["state"], status["done"], status["failed"]) == ("completed", OCCURRENCES, 0), (status, context)
        assert len(events) == OCCURRENCES, f"{len(events)} events for {OCCURRENCES} occurrences; {context}"
        assert len(set(values)) == OCCURRENCES, context
        assert not [e for e in events if e["subject"] == "Changed in Outlook"], context
        previous = prefix
    print(f"{EXPORT_RUNS} killed exports in {time.monotonic() - began:.1f} s; app restarts took "
          f"{min(stack.restarts):.1f}-{max(stack.restarts):.1f} s")


# --- room pull -----------------------------------------------------------------------------------------------


def two_way_room(stack: CrashStack, simulator: Any) -> OutlookRoom:
    """A new system on the crash stack's app with one two-way room connected (its api, d and system on it)."""
    api = stack.app.api()
    d = make_directory(simulator, f"{stack.app.url}/api/oauth/callback")
    system = new_system()
    configure(api, system, d)
    room = OutlookRoom(api, simulator, d, system)
    room.set_up()
    return room


def test_room_pulls_killed_at_random_points_publish_every_change_exactly_once(simulator, crash_stack):
    stack, rng = crash_stack, random.Random(SEED + 1)
    room = two_way_room(stack, simulator)
    system = room.system
    simulator.sim.graph.set_latency(5, 3, seed=SEED)
    states = stack.services.repos.pull_states
    partition = connection_partition(system, "space", "r1")
    message = {"system": system, "id": "r1"}
    pulled = f"room pull {system}/r1 -> "

    def state() -> Any:
        return states.get(partition, "state")

    def graph_requests() -> int:
        return simulator.sim.counters.snapshot()["counts"].get("graph.requests", 0)

    def pull_through_the_queue() -> float:
        """Send the timer's message; returns the moment the pull's delta request reached Graph (monotonic)."""
        before = graph_requests()
        stack.services.queues.send(PULL_QUEUE, message)
        wait_until(lambda: graph_requests() > before, 30, "the pull's delta request", interval=0.002)
        return time.monotonic()

    def pulled_idle(handled: int, timeout: float = 30) -> None:
        wait_until(lambda: len(stack.app.log_lines(pulled)) > handled and stack.queue_length(PULL_QUEUE) == 0,
                   timeout, "the pull to finish", interval=0.01)

    # The room's baseline (40 bookings, 3 of our own) and one round of many changes, uninterrupted: how long a
    # pull takes from its delta request on, over which kill times are drawn.
    def changes_like_a_run(many: bool) -> None:
        room.begin_round()
        room.retitle(2, rng)
        room.cancel(26 if many else 2, rng)
        room.book(26 if many else rng.randint(2, 6))
        room.move_own(rng)

    room.begin_round()
    room.book(40)
    room.export(3)
    durations = []
    for calibration in ("baseline", "many", "few"):
        if calibration != "baseline":
            changes_like_a_run(calibration == "many")
        handled = len(stack.app.log_lines(pulled))
        asked_at = pull_through_the_queue()
        pulled_idle(handled)
        durations.append(time.monotonic() - asked_at)
        room.check_feed()
    print(f"uninterrupted pulls took {[round(x * 1000) for x in durations]} ms from their delta request "
          "(baseline, many, few)")

    summary: Counter[str] = Counter()
    began = time.monotonic()
    for run in range(PULL_RUNS):
        many = rng.random() < 0.5  # over 45 changes: committed in two transactions
        changes_like_a_run(many)
        changes = sum(room.expected.values()) - len(room.feed())
        seq_before = state().seq
        delay = rng.uniform(0, durations[1 if many else 2] * 1.15)
        handled = len(stack.app.log_lines(pulled))
        asked_at = pull_through_the_queue()
        time.sleep(max(0.0, asked_at + delay - time.monotonic()))
        stack.app.kill()
        killed_at = datetime.now(UTC)
        committed = state().seq - seq_before
        finished = len(stack.app.log_lines(pulled)) > handled
        kind = "pull finished" if finished else ("all committed, not returned" if committed == changes else
                                                 "partly committed" if committed else "nothing committed")
        summary[kind] += 1
        where = (f"run {run}: {changes} changes, killed {delay * 1000:.0f} ms after the delta request "
                 f"(at {killed_at:%H:%M:%S.%f}): {kind} ({committed}/{changes} changes committed)")
        # Counted before the restart: the restarted app may deal with the redelivered message before it serves HTTP.
        handled = len(stack.app.log_lines(pulled))
        stack.restart()
        # The queue gives the killed worker's message back: the restarted app pulls the room then.
        wait_until(lambda n=handled: len(stack.app.log_lines(pulled)) > n or stack.queue_length(PULL_QUEUE) == 0,
                   30, f"the redelivered pull message after {where}\n{stack.app.log_lines('room_pull')[-6:]}")
        context = f"seed {SEED}, {where}\n{stack.app.errors()}"
        if not finished:
            wait_until(lambda: stack.queue_length(PULL_QUEUE) == 0, 30, f"the queue to drain; {context}")
            summary["pulled again by the redelivered message"] += 1
        print(where)
        room.check_feed()
        # The restarted app pulls the room normally again, and finds nothing new to publish.
        published = len(room.feed())
        pulls_logged = len(stack.app.log_lines(pulled))
        stack.app.invoke("room_pull", message)
        wait_until(lambda n=pulls_logged: len(stack.app.log_lines(pulled)) > n, 30, "a pull in the restarted app")
        assert len(room.feed()) == published, context
        room.check_feed()
    entries = room.check_feed()
    print(f"{PULL_RUNS} killed pulls in {time.monotonic() - began:.1f} s: {dict(summary)}; feed {len(entries)} "
          f"entries {dict(Counter(e['type'] for e in entries))}")


# --- a pull after an export to the same room was killed ------------------------------------------------------


def test_a_pull_after_a_killed_export_to_the_room_does_not_publish_our_own_events(simulator, crash_stack):
    """A bulk export to a two-way room is killed after some of its events were created in Outlook; before the
    queue gives its message back, the room is pulled (the 5-minute timer, on any instance). Those events are the
    product's own: they must never be published as bookings made in Outlook, nor afterwards."""
    stack = crash_stack
    room = two_way_room(stack, simulator)
    api, d, system = room.api, room.d, room.system
    room.book(5)
    stack.services.pull.pull(system, "r1")  # the baseline
    simulator.sim.graph.set_latency(4, 2, seed=SEED)
    payload = [{"item": f"bulk-{i}", **booking(OutlookRoom.OWN_FROM_HOURS + 3 * i)} for i in range(OCCURRENCES)]
    started = api.post(f"{room.base}/exports", json={"mode": "not_exported", "items": payload})
    assert started.status_code == 202, started.text
    wait_until(lambda: len(simulator.sim.graph.list_events(d.room)) >= 5 + 20, 30, "20 exported events",
               interval=0.002)
    stack.app.kill()
    exported = {e["id"] for e in simulator.sim.graph.list_events(d.room)} - set(room.externals)
    print(f"killed with {len(exported)} of {OCCURRENCES} exported events in the room")

    stack.services.pull.pull(system, "r1")  # the timer's pull, before the export resumes
    stack.restart()
    status = wait_until(lambda: (s := api.get(f"{room.base}/exports/{started.json()['job']}").json())
                        ["state"].startswith("completed") and s, 60, "the export to complete", interval=0.2)
    assert (status["done"], status["failed"]) == (OCCURRENCES, 0), status
    stack.services.pull.pull(system, "r1")
    records = {r.event_id for r in stack.services.repos.sync_records.partition(connection_partition(system, "space",
                                                                                                  "r1"))}
    room.own.update({event_id: "bulk" for event_id in records if event_id})
    echoed = [e for e in room.feed() if e["event_id"] in room.own]
    assert not echoed, (f"{len(echoed)} of our own exported events were published as Outlook bookings "
                        f"({Counter(e['type'] for e in echoed)}), e.g. {echoed[0]}")
    room.check_feed()
