"""Races between instances of the app, as Azure runs them when it scales out: each instance here is either a
separate set of services (`build_services`, its own process-level state: token locks, access tokens in hand,
worker IDs) or a separate app process (`devstack.serve_app`), all on one storage account and one simulator.

- 8 concurrent refreshes of one connection keep one refresh-token lineage and the connection usable (the
  simulator refuses rotated-out refresh tokens, stricter than Entra, so a lost rotation shows);
- two pulls of one room at once, in two app processes, publish every change once, with no gap in the feed;
- two export jobs for the same items, started at once, leave exactly one event per occurrence;
- a pull while a bulk export writes to the same room never publishes the export's events as Outlook bookings.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.ports import free_port
from shared.export.content import MARKER_ID
from shared.runtime import Services, build_services
from shared.settings import Settings
from tests.e2e.processes import AppProcess, OutlookRoom, app_env, isolated_storage
from tests.helpers import configure, connect, make_directory, new_system, wait_for
from tests.integration.test_bulk_export import items
from tests.integration.test_pull import booking

INSTANCES = 8


# --- helpers ---------------------------------------------------------------------------------------------------


def refresh_grants(simulator) -> Counter[str]:
    """The simulator's refresh-token grant counters (ok, error, error.<AADSTS number>)."""
    counts = simulator.sim.counters.snapshot()["counts"]
    prefix = "identity.token.refresh_token."
    return Counter({k[len(prefix):]: v for k, v in counts.items() if k.startswith(prefix)})


def lineage(simulator, user_id: str, client_id: str) -> tuple[int, list[str]]:
    """Live refresh-token families of one user and app in the simulator, and their live (not rotated-out)
    refresh tokens."""
    identity = simulator.sim.identity
    with identity.lock:
        families = {f.id for f in identity.families.values()
                    if f.user_id == user_id and f.client_id == client_id and f.revoked_reason is None}
        live = [t.token for t in identity.refresh_tokens.values()
                if t.family_id in families and not t.superseded]
    return len(families), live


def stored_refresh_tokens(services: Services, system: str, row_key: str) -> list[str]:
    """The refresh tokens in the connection's sealed MSAL cache, as the app stored it."""
    row = services.repos.token_caches.get(system, row_key)
    assert row is not None
    cache = json.loads(services.cipher.open(row.sealed, row.context()))
    return [entry["secret"] for entry in cache.get("RefreshToken", {}).values()]


def schedule_entry(services: Services, system: str, kind: str, subject: str) -> str:
    row = services.repos.token_caches.get(system, f"{kind}:{subject}")
    assert row is not None and row.due_key
    return row.due_key


def all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; returns each result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results



def assert_one_lineage_and_usable(api, simulator, services: Services, system: str, d, label: str) -> None:
    """The connection is still `connected`, a Graph call through the API works, and Microsoft has one live
    refresh-token family for the user and app, whose one live token is the one the app stored."""
    status = api.get(f"/api/systems/{system}/connections/user/u1").json()
    calendars = api.get(f"/api/systems/{system}/connections/user/u1/calendars")
    families, live = lineage(simulator, d.staff_id, d.client_id)
    facts = {"status": status["status"], "graph_call": calendars.status_code, "live_families": families,
             "live_refresh_tokens": len(live), "stored_token_is_the_live_one": stored_refresh_tokens(
                 services, system, "user:u1") == live}
    wanted = {"status": "connected", "graph_call": 200, "live_families": 1, "live_refresh_tokens": 1,
              "stored_token_is_the_live_one": True}
    assert facts == wanted, f"{label}: {facts}; last error {status['last_error']}"


# --- 8 concurrent refreshes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["schedule_entry", "forced"])
def test_eight_concurrent_refreshes_keep_one_lineage_and_the_connection(app, api, simulator, message):
    """Eight instances each run the token-refresh queue function's work (`token_health.refresh`, which forces a
    refresh) for one connection at the same moment: with the sweep's message (its schedule entry, as eight
    deliveries of it would) or without the entry (each one refreshes whatever the schedule says)."""
    d = make_directory(simulator, app.redirect_uri)
    system = new_system()
    configure(api, system, d)
    connect(api, simulator, system, "user", "u1", d.staff)
    instances = [build_services(Settings.from_env(os.environ)) for _ in range(INSTANCES)]
    for services in instances:  # warm each instance (data key, client secret), as a running instance would be
        services.integrations.require(system)
        services.secrets.ping()
    body = {"system": system, "kind": "user", "id": "u1"}
    if message == "schedule_entry":
        body["due"] = schedule_entry(instances[0], system, "user", "u1")
    before = refresh_grants(simulator)

    outcomes = all_at_once([lambda s=s: s.token_health.refresh(dict(body)) for s in instances])

    grants = refresh_grants(simulator) - before
    named = Counter(type(o).__name__ if isinstance(o, Exception) else o for o in outcomes)
    print(f"\n8 concurrent refreshes ({message}): outcomes {dict(named)}, refresh grants {dict(grants)}")
    assert grants["ok"] >= 1
    assert_one_lineage_and_usable(api, simulator, instances[0], system, d, f"8 instances, {message}")
    # Refreshed, or nothing to do; a lost race on the connection row's ETag (recording when it was refreshed)
    # raises for the queue to retry the message, which then finds its schedule entry stale.
    assert set(named) <= {"refreshed", "stale", "ConcurrencyConflict"}, (named, outcomes)
    # The lineage goes on: the next keep-alive refresh works.
    assert instances[0].token_health.refresh(dict(body, due="")) == "refreshed"
    assert_one_lineage_and_usable(api, simulator, instances[0], system, d, "the refresh after the race")


@pytest.fixture
def own_storage() -> Iterator[Any]:
    with isolated_storage() as azurite:
        yield azurite


@pytest.fixture
def two_apps(app, own_storage, tmp_path) -> Iterator[list[AppProcess]]:
    """Two app processes on one storage account (the session's simulator and Key Vault), as two instances."""
    ports = [free_port(), free_port()]
    processes = [AppProcess(app_env(app.env, own_storage, f"http://127.0.0.1:{port}",
                                    DEVSTACK_QUEUE_LEASE_SECONDS="3"), port, tmp_path / f"app{i}.log")
                 for i, port in enumerate(ports)]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


def process_services(process: AppProcess) -> Services:
    """Services in the test process on the app processes' storage (to read tables and queue messages)."""
    return build_services(Settings.from_env(process.env))


def user_connected_on(app: Any, simulator: Any) -> tuple[Any, Any, str]:
    """A new system configured through `app` with user u1 signed in: (api, directory, system)."""
    api = app.api()
    d = make_directory(simulator, f"{app.url}/api/oauth/callback")
    system = new_system()
    configure(api, system, d)
    connect(api, simulator, system, "user", "u1", d.staff)
    return api, d, system


def test_eight_concurrent_refreshes_across_two_app_processes(simulator, two_apps):
    """The token-refresh queue function invoked 4 times at once in each of two app processes: within a process
    the refreshes of one connection take turns (a lock); across processes only the cache's ETag decides."""
    first, second = two_apps
    api, d, system = user_connected_on(first, simulator)
    for process in two_apps:  # both instances warm: services built, data key and client secret in hand
        assert process.api().get(f"/api/systems/{system}/connections/user/u1/calendars").status_code == 200
    services = process_services(first)
    body = {"system": system, "kind": "user", "id": "u1", "due": schedule_entry(services, system, "user", "u1")}
    before = refresh_grants(simulator)

    all_at_once([lambda p=p: p.invoke("token_refresh", body) for p in (first, second) for _ in range(4)])

    wait_for(lambda: executed(two_apps, "token_refresh") >= 8, 60, "8 token_refresh invocations")
    outcomes = Counter(line.rsplit("-> ", 1)[-1] for p in two_apps
                       for line in p.log_lines(f"token refresh {system}/user:u1 -> "))
    # A failed invocation's exception, last line of its traceback ("shared.errors.ConcurrencyConflict: ...").
    outcomes.update(line.split(":", 1)[0].rsplit(".", 1)[-1] for p in two_apps for line in p.log_lines("")
                    if line.startswith("shared."))
    grants = refresh_grants(simulator) - before
    print(f"\n8 refreshes in 2 app processes: outcomes {dict(outcomes)}, refresh grants {dict(grants)}")
    assert grants["ok"] >= 1
    assert_one_lineage_and_usable(api, simulator, services, system, d, "2 app processes")
    assert set(outcomes) <= {"refreshed", "stale", "ConcurrencyConflict"}, outcomes


# --- two pulls of one room at once, in two app processes -----------------------------------------------------


def executed(processes: list[AppProcess], function: str) -> int:
    return sum(len(p.log_lines(f"Executed '{function}' (")) for p in processes)


def test_two_app_processes_pulling_one_room_publish_each_change_once(simulator, two_apps):
    """Rounds of Outlook changes (bookings made, retitled and cancelled, one of our own events moved), each
    followed by the room-pull queue function invoked 3 times at once in each of two app processes: every change
    is in the feed exactly once, the feed's sequence has no gap, and our own exports never come back."""
    first, second = two_apps
    api = first.api()
    d = make_directory(simulator, f"{first.url}/api/oauth/callback")
    system = new_system()
    configure(api, system, d)
    room = OutlookRoom(api, simulator, d, system)
    room.set_up()
    assert second.api().get(f"{room.base}/calendars").status_code == 200  # warm: services built
    rng = random.Random(20240611)
    outcomes: Counter[str] = Counter()
    for round_ in range(5):
        room.begin_round()
        if round_ == 0:
            room.book(40)  # the first pull is the room's baseline: a room with 40 bookings
            room.export(3)
        else:
            room.book(rng.randint(2, 6))
            room.retitle(2, rng)
            room.cancel(2, rng)
            room.move_own(rng)
        done = executed(two_apps, "room_pull")
        all_at_once([lambda p=p: p.invoke("room_pull", {"system": system, "id": "r1"})
                     for p in (first, second) for _ in range(3)])
        wait_for(lambda d=done: executed(two_apps, "room_pull") >= d + 6, 60, "6 room_pull invocations")
        room.check_feed()
    for process in two_apps:
        outcomes.update("skipped" if "'busy'" in line else "pulled"
                        for line in process.log_lines(f"{system}/r1"))
        assert not [line for line in process.log_lines("Executed 'room_pull' (Failed")], process.errors()
    entries = room.check_feed()
    print(f"\n2 app processes x 3 pulls x 5 rounds: {dict(outcomes)}; {len(entries)} feed entries, "
          f"{dict(Counter(e['type'] for e in entries))}")
    assert outcomes["pulled"] >= 5 and outcomes["skipped"] >= 1  # they really did collide


# --- two export jobs for the same items at once --------------------------------------------------------------


def markers(simulator, mailbox: str) -> tuple[int, list[str]]:
    events = simulator.sim.graph.list_events(mailbox)
    return len(events), [p["value"] for e in events for p in e.get("singleValueExtendedProperties", [])
                         if p["id"] == MARKER_ID]


def wait_for_job(api, system: str, job: str, timeout: float = 90) -> dict[str, Any]:
    def completed() -> dict[str, Any] | None:
        status = api.get(f"/api/systems/{system}/connections/user/u1/exports/{job}").json()
        return status if status.get("state", "").startswith("completed") else None

    return wait_for(completed, timeout, f"export job {job}")


def drain_retries(process: AppProcess, system: str) -> dict[str, int]:
    """Occurrences a job handed to the retry table (a transient Graph failure under the load of two jobs): run the
    retry drain's work now, as its timer would an hour later. Returns the entries' error codes."""
    later = build_services(Settings.from_env(process.env), clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    codes = Counter(e.last_error_code or "" for e in later.repos.retries.partition("retry") if e.system == system)
    if codes:
        later.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    return dict(codes)


@pytest.mark.parametrize("modes", [("not_exported", "not_exported"), ("all", "all"), ("not_exported", "all")])
def test_two_export_jobs_for_the_same_items_at_once_make_one_event_per_occurrence(simulator, two_apps, modes):
    """Two jobs over the same 300 occurrences (2 chunks each) started at the same moment, one through each app
    process; and as a queue may deliver a message more than once, every chunk message of both jobs is also run
    at once by the export-work function of both processes (next to the queue's own delivery). First on items
    never exported, then again after 10 of their events were deleted and 5 retitled in Outlook: exactly one
    event per occurrence after each pair, every marker unique."""
    first, second = two_apps
    api, d, system = user_connected_on(first, simulator)
    assert second.api().get(f"/api/systems/{system}/connections/user/u1/calendars").status_code == 200
    simulator.sim.graph.set_latency(3, 2, seed=5)
    payload = items(300, prefix="race")
    base = f"/api/systems/{system}/connections/user/u1/exports"
    for round_ in range(2):
        expected = 300
        if round_ == 1:  # Outlook side changes: deletions to recreate ("all") and titles to restore
            events = sorted(simulator.sim.graph.list_events(d.staff), key=lambda e: e["id"])
            for event in events[:10]:
                simulator.sim.graph.delete_event(event["id"])
            for event in events[10:15]:
                simulator.sim.graph.update_event(event["id"], {"subject": "Changed in Outlook"})
            if "all" not in modes:
                expected = 290  # "not exported before" leaves what was exported once alone
        before = [executed([p], "export_work") for p in two_apps]
        started = all_at_once([lambda p=p, m=m: p.api().post(base, json={"mode": m, "items": payload})
                               for p, m in zip((first, second), modes, strict=True)])
        assert all(r.status_code == 202 for r in started), [r.text for r in started]
        jobs = [r.json()["job"] for r in started]
        chunks = [{"type": "chunk", "system": system, "kind": "user", "id": "u1", "job": job, "chunk": index}
                  for job in jobs for index in range(2)]
        all_at_once([lambda p=p, c=c: p.invoke("export_work", c) for p in two_apps for c in chunks])
        statuses = [wait_for_job(api, system, job) for job in jobs]
        wanted = sum(before) + 12
        wait_for(lambda w=wanted: executed(two_apps, "export_work") >= w, 60, "8 direct and 4 queued chunk runs")
        runs = [executed([p], "export_work") - b for p, b in zip(two_apps, before, strict=True)]
        retried = drain_retries(first, system)
        count, values = markers(simulator, d.staff)
        print(f"\nexport jobs {modes} round {round_}: "
              f"{[(s['state'], s['done'], s['failed'], s['retrying']) for s in statuses]} (state, done, failed, "
              f"retrying), chunk runs per process {runs}, retried {retried}, events {count}")
        assert all(s["failed"] == 0 and s["done"] + s["retrying"] == 300 for s in statuses), statuses
        assert count == expected, f"{count} events for {expected} occurrences expected in Outlook"
        assert len(set(values)) == count
        subjects = Counter(e["subject"] for e in simulator.sim.graph.list_events(d.staff))
        assert ("Changed in Outlook" in subjects) == (round_ == 1 and "all" not in modes)
    for process in two_apps:
        assert not process.log_lines("Executed 'export_work' (Failed"), process.errors()


# --- a pull while an export writes to the same room ----------------------------------------------------------


def test_a_pull_during_a_bulk_export_to_the_room_does_not_publish_our_own_events(app, api, simulator):
    """The room-pull timer (every 5 minutes) runs while a bulk export writes to the same two-way room: the events
    being exported are the product's own and must never come back as bookings made in Outlook."""
    d = make_directory(simulator, app.redirect_uri)
    system = new_system()
    configure(api, system, d)
    room = OutlookRoom(api, simulator, d, system)
    room.set_up()
    services = build_services(Settings.from_env(os.environ))
    services.pull.pull(system, "r1")  # the baseline
    simulator.sim.graph.set_latency(20, 0)
    # The export keeps the room's mailbox at Outlook's 4 requests in flight; lift the limit so the pull's delta
    # request is not answered 429 (and retried seconds later, after the export is over).
    simulator.sim.graph.set_throttling(concurrency=64)
    payload = [{"item": f"bulk-{i}", **booking(OutlookRoom.OWN_FROM_HOURS + 3 * i)} for i in range(150)]
    started = api.post(f"{room.base}/exports", json={"mode": "not_exported", "items": payload})
    assert started.status_code == 202, started.text
    wait_for(lambda: simulator.sim.graph.list_events(d.room), 30, "the export's first events")
    pulls = []
    while not api.get(f"{room.base}/exports/{started.json()['job']}").json()["state"].startswith("completed"):
        pulls.append(services.pull.pull(system, "r1")["published"])
    pulls.append(services.pull.pull(system, "r1")["published"])
    records = {r.event_id for r in services.repos.sync_records.partition(f"{system}|space|r1") if r.event_id}
    echoed = [e for e in room.feed() if e["event_id"] in records]
    print(f"\npulls during the export published {pulls}; {len(echoed)} of them our own events")
    assert not echoed, (f"{len(echoed)} of our own exported events were published as Outlook bookings, e.g. "
                        f"{echoed[0]}")


# --- 8 processes create one occurrence at once, while Graph accepts duplicate transactionIds ---------------------

SHIFT = {"title": "Desk", "occurrences": [{"key": "a", "start": "2027-03-01T09:00:00",
                                           "end": "2027-03-01T10:00:00", "time_zone": "Europe/Paris"}]}


def upsert_in_own_process(system: str, barrier: Any, answers: Any) -> None:
    """One app instance (its own process, services and engine) upserting the shift as soon as all are ready."""
    from shared.runtime import build_services as build
    from shared.settings import Settings as AppSettings

    services = build(AppSettings.from_env(os.environ))
    services.integrations.require(system)  # warm, as a running instance would be
    services.secrets.ping()
    barrier.wait(timeout=120)
    try:
        body, status = services.export.put_item(system, "user", "u1", "shift", json.loads(json.dumps(SHIFT)))
        answers.put((status, body["occurrences"][0]["state"], body["occurrences"][0]["sync_id"]))
    except Exception as exc:  # noqa: BLE001 - reported by the test
        answers.put(("error", repr(exc), None))


def test_eight_processes_creating_one_occurrence_make_one_event_even_if_graph_accepts_each(app, api, simulator):
    """Graph's transactionId dedup is best-effort: under the simulator's duplicate_transaction fault every create
    is accepted as a new event, so only the claim on the occurrence's record stops duplicates. Eight processes
    upsert the same one-occurrence item at once: one event exists; every process answered its sync ID or pending,
    and the retry resolves the pending ones to that same sync ID."""
    import multiprocessing

    d = make_directory(simulator, app.redirect_uri)
    system = new_system()
    configure(api, system, d)
    connect(api, simulator, system, "user", "u1", d.staff)
    simulator.sim.graph.add_fault("duplicate_transaction", probability=1.0, method="POST", path_contains="/events")
    simulator.sim.graph.set_latency(300, 0)  # creates in flight overlap, as on a slow Graph
    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(INSTANCES), context.Queue()
    workers = [context.Process(target=upsert_in_own_process, args=(system, barrier, answers))
               for _ in range(INSTANCES)]
    for worker in workers:
        worker.start()
    try:
        results = [answers.get(timeout=180) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
    simulator.sim.graph.set_latency(0, 0)

    events = simulator.sim.graph.list_events(d.staff)
    print(f"\n8 processes upserting one occurrence: {Counter((s, st) for s, st, _ in results)}, "
          f"{len(events)} event(s)")
    assert len(events) == 1, (len(events), results)
    (event,) = events
    assert all(status in (200, 202) for status, _, _ in results), results
    assert all(sync_id in (None, event["id"]) for _, _, sync_id in results), results
    assert any(state == "synced" and sync_id == event["id"] for _, state, sync_id in results), results

    later = build_services(Settings.from_env(os.environ),
                           clock=lambda: datetime.now(UTC) + timedelta(minutes=2))  # claims and deferrals end
    later.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    item = later.export.get_item(system, "user", "u1", "shift")
    assert [(o["state"], o["sync_id"]) for o in item["occurrences"]] == [("synced", event["id"])]
    assert len(simulator.sim.graph.list_events(d.staff)) == 1
    assert [e for e in later.repos.retries.partition("retry") if e.system == system] == []
