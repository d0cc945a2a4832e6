"""Bulk export benchmark: the real app (its services, in this process) against Azurite and the Microsoft simulator,
ratios measured in one run (`bench/export`, or `python -m bench.export_bench --help`).

1. One mailbox: N occurrences (default 2,000) exported by one job with a Graph latency L and Outlook's 4-in-flight
   limit enforced. Wall time from `start_export` until the job reads completed, against the bound N*L/4 (no client
   can do better: Outlook serves 4 requests at a time per app and mailbox). Also the Graph round trips, peak in
   flight, throttling refusals, and duplicates / missing events read back from the simulator.
2. A sequential client, as peers do it (one POST per event, one at a time), writing the same events to a second
   mailbox with the same latency: the speed-up is its time over ours.
3. M mailboxes (default 50): N occurrences spread over them, one job each, all started together, against the bound
   of the configured concurrency.

The export queue is consumed by the benchmark's own worker (bench.stack.QueueWorker: the host's semantics, 16
functions at once as host.json's batchSize); the app's host serves HTTP only, so nothing else consumes the queue.
By default the simulator runs in its own process behind a keep-alive server (bench/simulator_process.py says why);
`--simulator thread` serves it exactly as the tests do.

Everything is read from the simulator: round trips (a `$batch` envelope counts once), peak requests in flight per
mailbox, 429s, and the events themselves (each carries the app's marker property naming its item and occurrence).
Where the time went comes from a timeline of the `$batch` envelopes the simulator served.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from queue import Empty, Queue
from typing import Any

from bench.report import Report, Target, storage_breakdown
from bench.stack import POOL_FULL, BenchStack, Delivery, QueueWorker, Served, cpu_now, run_bench

PER_BATCH = 20  # Graph's $batch limit, the executor's batch size
IN_FLIGHT = 4  # Outlook's concurrent requests per app and mailbox
TIME_ZONE = "Europe/London"
TITLES = ("Reference desk", "Circulation desk", "Children's library", "Study rooms: opening", "Archive reading room",
          "IT help desk", "Shelving and returns", "Local history desk", "Makerspace supervision", "Late desk")
SHIFT_STARTS = (7, 8, 9, 10, 12, 13, 14, 16, 17, 18)  # local hours; never in a DST gap (01:00-02:00)


# --- targets ---------------------------------------------------------------------------------------------------


TARGETS = {
    "ratio_to_bound": Target("<=", 1.15),
    "speedup_vs_sequential": Target(">=", 3.5),
    "round_trips": Target("<=", 105),
    "violations": Target("==", 0),
    "duplicates": Target("==", 0),
    "missing": Target("==", 0),
}


# --- workload --------------------------------------------------------------------------------------------------


def shift_items(count: int, *, first_day: date, prefix: str = "shift") -> list[dict[str, Any]]:
    """`count` future shifts of one occurrence each, ten a day from `first_day` on, in an IANA zone."""
    items = []
    for i in range(count):
        day = first_day + timedelta(days=i // len(SHIFT_STARTS))
        hour = SHIFT_STARTS[i % len(SHIFT_STARTS)]
        start = datetime(day.year, day.month, day.day, hour, 0)
        end = start + timedelta(hours=4 if hour < 17 else 3, minutes=30 if i % 3 == 0 else 0)
        items.append({
            "item": f"{prefix}-{i:05d}",
            "title": TITLES[i % len(TITLES)],
            "location_text": "Main Library",
            "notes": f"Rota week {day.isocalendar().week}",
            "occurrences": [{"key": f"{day.isoformat()}T{hour:02d}", "start": start.isoformat(),
                             "end": end.isoformat(), "time_zone": TIME_ZONE}],
        })
    return items


def batches_for(occurrences: int) -> list[int]:
    """Item counts of the $batch envelopes one mailbox needs (20 per envelope)."""
    full, rest = divmod(occurrences, PER_BATCH)
    return [PER_BATCH] * full + ([rest] if rest else [])


def batch_seconds(items: int, latency: float) -> float:
    """Outlook runs 4 items of a batch at once: 20 items take 5 L."""
    return math.ceil(items / IN_FLIGHT) * latency


# --- waiting for jobs ------------------------------------------------------------------------------------------


class JobWatcher:
    """Knows when jobs complete: after every chunk the worker finishes, the job it belongs to is read through
    `ExportService.job_status` (as the host app polls it); a periodic sweep catches anything else."""

    def __init__(self, export: Any) -> None:
        self._export = export
        self._jobs: dict[str, tuple[str, str, str]] = {}
        self.completed: dict[str, float] = {}  # job -> perf_counter time it was seen completed
        self.states: dict[str, dict[str, Any]] = {}
        self._touched: Queue[str] = Queue()
        self._lock = threading.Lock()

    def add(self, job: str, system: str, kind: str, subject: str) -> None:
        with self._lock:
            self._jobs[job] = (system, kind, subject)

    def on_done(self, delivery: Delivery) -> None:
        job = delivery.body.get("job")
        if isinstance(job, str):
            self._touched.put(job)

    def _check(self, job: str) -> None:
        with self._lock:
            ids = self._jobs.get(job)
        if ids is None or job in self.completed:
            return
        seen = time.perf_counter()  # the state cannot change during the read: it is done by then at the latest
        with storage_requests().scope("poll"):
            status = self._export.job_status(*ids, job)
        if status["state"] in ("completed", "completed_with_failures"):
            self.completed[job] = seen
            self.states[job] = status

    def wait(self, jobs: list[str], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        last_sweep = time.perf_counter()
        while not all(j in self.completed for j in jobs):
            if time.perf_counter() > deadline:
                return False
            with contextlib.suppress(Empty):
                self._check(self._touched.get(timeout=0.5))
            if time.perf_counter() - last_sweep > 2.0:
                for job in jobs:
                    self._check(job)
                last_sweep = time.perf_counter()
        return True


# --- reading the simulator -------------------------------------------------------------------------------------


@dataclass
class GraphFigures:
    round_trips: int  # HTTP requests to Graph: $batch envelopes once, plus requests outside batches
    envelopes: int
    batch_items: int
    direct_requests: int
    throttled: int
    throttled_concurrency: int
    throttled_budget: int
    peak_in_flight: dict[str, int]
    statuses: dict[str, int]


def graph_figures(graph: Any) -> GraphFigures:
    snap = graph.counter_snapshot()
    counts: dict[str, int] = snap.get("counts", {})
    peaks: dict[str, int] = snap.get("peaks", {})
    envelopes = counts.get("graph.batch", 0)
    items = counts.get("graph.batch.items", 0)
    direct = counts.get("graph.requests", 0) - items
    prefix = "graph.inflight."
    return GraphFigures(
        round_trips=envelopes + direct, envelopes=envelopes, batch_items=items, direct_requests=direct,
        throttled=counts.get("graph.throttled", 0),
        throttled_concurrency=counts.get("graph.throttled.concurrency", 0),
        throttled_budget=counts.get("graph.throttled.budget", 0),
        peak_in_flight={k[len(prefix):]: v for k, v in peaks.items() if k.startswith(prefix)},
        statuses={k[len("graph.status."):]: v for k, v in counts.items() if k.startswith("graph.status.")},
    )


@dataclass
class Audit:
    events: int = 0
    duplicates: int = 0  # events beyond one per expected occurrence
    missing: int = 0  # expected occurrences with no event
    unexpected: int = 0  # events whose marker names no expected occurrence (or no marker at all)
    mismatched: int = 0  # events whose title or start is not what the occurrence says


def audit(graph: Any, mailbox: str, items: list[dict[str, Any]]) -> Audit:
    from shared.export.content import MARKER_ID, parse_marker

    marker_id = " ".join(MARKER_ID.split()).lower()
    wanted = {(i["item"], o["key"]): (i, o) for i in items for o in i["occurrences"]}
    seen: Counter[tuple[str, str]] = Counter()
    result = Audit()
    for event in graph.list_events(mailbox):
        result.events += 1
        marker = next((p.get("value") for p in event.get("singleValueExtendedProperties") or []
                       if " ".join(str(p.get("id", "")).split()).lower() == marker_id), None)
        parts = parse_marker(marker) if isinstance(marker, str) else None
        key = (parts["item_id"], parts["occurrence_key"]) if parts else None
        if key is None or key not in wanted:
            result.unexpected += 1
            continue
        seen[key] += 1
        item, occurrence = wanted[key]
        if event.get("subject") != item["title"] or not _same_start(event, occurrence):
            result.mismatched += 1
    result.duplicates = sum(n - 1 for n in seen.values() if n > 1) + result.unexpected
    result.missing = sum(1 for key in wanted if key not in seen)
    return result


def _same_start(event: dict[str, Any], occurrence: dict[str, str]) -> bool:
    from zoneinfo import ZoneInfo

    expected = datetime.fromisoformat(occurrence["start"]).replace(tzinfo=ZoneInfo(occurrence["time_zone"]))
    got = datetime.fromisoformat(event["start"]["dateTime"][:19]).replace(tzinfo=UTC)
    return got == expected.astimezone(UTC)


# --- timeline analysis -----------------------------------------------------------------------------------------


@dataclass
class Timeline:
    envelopes: int = 0
    first_start: float = 0.0  # seconds after t0
    last_end: float = 0.0
    busy: float = 0.0  # union of the time Graph was serving an envelope
    mean_envelope: float = 0.0
    gaps: list[float] = field(default_factory=list)  # idle time between one envelope's answer and the next


def timeline(served: list[Served], t0: float) -> Timeline:
    batches = sorted((s for s in served if s.path.rstrip("/").endswith("$batch")), key=lambda s: s.started)
    if not batches:
        return Timeline()
    out = Timeline(envelopes=len(batches), first_start=batches[0].started - t0,
                   mean_envelope=sum(s.finished - s.started for s in batches) / len(batches))
    end = batches[0].started
    for s in batches:
        if s.started > end:
            out.gaps.append(s.started - end)
        out.busy += max(0.0, s.finished - max(s.started, end))
        end = max(end, s.finished)
    out.last_end = end - t0
    return out


# --- the runs --------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    wall: float
    start_spans: list[tuple[float, float]]  # each start_export call: began, returned (seconds after t0)
    first_pickup: float  # first chunk message received, after t0
    graph: GraphFigures
    audit: Audit
    executor: dict[str, int]
    timeline: Timeline
    chunks: list[Delivery]
    failed_jobs: list[str]
    pool_full: int  # connections urllib3 dropped because a client's pool was full
    storage_ops: dict[str, int]  # the app's table and queue requests, "start|chunk|poll: operation"
    cpu: dict[str, float]  # CPU seconds during the run: app (this process), azurite, simulator


def executor_stats(services: Any) -> dict[str, int]:
    """The app's BatchExecutor counters."""
    return services.export.graph_stats()


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def storage_requests() -> Any:
    from shared.storage.transport import storage_requests as counter

    return counter()


def export_run(stack: BenchStack, system: str, subjects: list[tuple[str, str, list[dict[str, Any]]]], *,
               threads: int, timeout: float) -> RunResult:
    """One job per (subject, mailbox, items), all started together; returns when all read completed."""
    from shared.export.service import EXPORT_QUEUE

    services = stack.services()
    graph = stack.sim.graph
    watcher = JobWatcher(services.export)
    graph.reset_counters()
    stack.sim.clear_timeline()
    before = executor_stats(services)
    POOL_FULL.take()
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    t0 = 0.0  # set when the worker is up, just before the first start_export

    def start(subject: str, items: list[dict[str, Any]]) -> str:
        began = time.perf_counter()
        with storage_requests().scope("start"):
            job = services.export.start_export(system, "user", subject, {"mode": "not_exported", "items": items})
        watcher.add(job["job"], system, "user", subject)
        with lock:
            spans.append((began - t0, time.perf_counter() - t0))
        return str(job["job"])

    def process(message: dict[str, Any]) -> Any:
        with storage_requests().scope("chunk"):
            return services.export.process(message)

    with QueueWorker(stack.connection_string, EXPORT_QUEUE, process, threads=threads,
                     on_done=watcher.on_done) as worker:
        storage_requests().take()
        cpu0 = cpu_now(stack)
        t0 = time.perf_counter()
        if len(subjects) == 1:
            jobs = [start(subjects[0][0], subjects[0][2])]
        else:  # as many host requests arriving at once
            with ThreadPoolExecutor(max_workers=min(threads, len(subjects))) as pool:
                jobs = list(pool.map(lambda s: start(s[0], s[2]), subjects))
        finished = watcher.wait(jobs, timeout)
        t1 = max(watcher.completed.values()) if finished else time.perf_counter()
        cpu1 = cpu_now(stack)
        ops, _ = storage_requests().take()
        deliveries = list(worker.deliveries)
    failed = [j for j in jobs if j not in watcher.completed or watcher.states[j]["state"] != "completed"]
    figures = graph_figures(graph)
    total = Audit()
    for _, mailbox, items in subjects:
        one = audit(graph, mailbox, items)
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(one, name))
    chunks = [d for d in deliveries if d.body.get("type") == "chunk"]
    return RunResult(
        wall=t1 - t0, start_spans=sorted(spans),
        first_pickup=min((d.received_at for d in chunks), default=t1) - t0,
        graph=figures, audit=total, executor=_delta(executor_stats(services), before),
        timeline=timeline(stack.sim.served(), t0), chunks=chunks, failed_jobs=failed, pool_full=POOL_FULL.take(),
        storage_ops=dict(ops), cpu={k: cpu1.get(k, 0.0) - v for k, v in cpu0.items()})


@dataclass
class SequentialResult:
    wall: float
    requests: int
    created: int
    throttled: int
    events: int


def sequential_run(stack: BenchStack, directory: Any, system: str, mailbox: str,
                   items: list[dict[str, Any]]) -> SequentialResult:
    """Peers' way: one POST per event, one at a time, waiting Retry-After on a 429; the same event bodies the app
    sends (title, times with their zone, body, location, marker), with a delegated token of the mailbox's owner
    (the same app registration, signed in through the simulator's pages with MSAL)."""
    from shared.export.content import Occurrence, event_body
    from shared.export.items import parse_item
    from simulator.testing import confidential_client, http_session, sign_in

    sim = stack.sim
    graph = sim.graph
    msal_app = confidential_client(sim, directory.client_id, directory.secret)  # type: ignore[arg-type]
    flow = msal_app.initiate_auth_code_flow(["Calendars.ReadWrite"], redirect_uri=f"{stack.app_url}/api/oauth/callback",
                                            login_hint=mailbox, response_mode="form_post")
    token = msal_app.acquire_token_by_auth_code_flow(flow, sign_in(flow["auth_uri"], mailbox, ca_path=sim.ca_path))
    if "access_token" not in token:
        raise RuntimeError(f"the sequential client could not sign in: {token.get('error_description')}")
    bodies = []
    for raw in items:
        item = parse_item(system, "user", "sequential", raw["item"], raw)
        bodies.extend(event_body(item, Occurrence.from_json(o), "patron_name") for o in item.occurrences)
    session = http_session(sim.ca_path)
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    url = f"{sim.url}/v1.0/me/calendar/events"
    graph.reset_counters()
    created = throttled = sent = 0
    t0 = time.perf_counter()
    for body in bodies:
        while True:
            sent += 1
            response = session.post(url, json=body, timeout=30)
            if response.status_code == 429:
                throttled += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            break
        created += response.status_code == 201
    wall = time.perf_counter() - t0
    session.close()
    return SequentialResult(wall, sent, created, throttled, len(graph.list_events(mailbox)))


# --- set-up ----------------------------------------------------------------------------------------------------


def connect_users(stack: BenchStack, system: str, directory: Any, subjects: list[tuple[str, str]]) -> None:
    """The real OAuth flow through the app's API and the simulator's sign-in pages, a few at a time."""
    from tests.helpers import connect

    def one(pair: tuple[str, str]) -> None:
        subject, address = pair
        connect(stack.api(), stack.sim, system, "user", subject, address)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, subjects))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=25.0, help="Graph latency per request, L (default 25)")
    parser.add_argument("--occurrences", type=int, default=2000, help="occurrences per run (default 2000)")
    parser.add_argument("--mailboxes", type=int, default=50, help="mailboxes of the spread run (default 50)")
    parser.add_argument("--workers", type=int, default=16, help="queue worker threads (host.json batchSize: 16)")
    parser.add_argument("--global-concurrency", type=int, default=16,
                        help="GRAPH_GLOBAL_CONCURRENCY of the app (default 16)")
    parser.add_argument("--simulator", choices=("process", "thread"), default="process",
                        help="process (default): the simulator in its own process behind a keep-alive HTTPS server, "
                             "as Graph is a remote service with persistent connections; thread: served exactly as "
                             "the tests serve it, from this process by werkzeug, which closes every connection")
    parser.add_argument("--skip-sequential", action="store_true", help="leave out the sequential client")
    parser.add_argument("--skip-mailboxes", action="store_true", help="leave out the many-mailbox run")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--verbose", action="store_true", help="the app's INFO logs")
    args = parser.parse_args(argv)
    if args.occurrences < 1 or args.mailboxes < 1 or args.workers < 1 or args.latency_ms < 0:
        parser.error("occurrences, mailboxes and workers must be positive, latency not negative")
    return run_bench(lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    from tests.helpers import configure, make_directory, new_system

    began = time.perf_counter()
    n, latency = args.occurrences, args.latency_ms / 1000.0
    report = Report(TARGETS, width=44)
    print(f"Export benchmark: {n} occurrences, Graph latency {args.latency_ms:g} ms, {IN_FLIGHT} requests in flight "
          f"per app and mailbox (simulator throttling on), {args.workers} queue worker threads, "
          f"GRAPH_GLOBAL_CONCURRENCY {args.global_concurrency}, simulator in a {args.simulator}", flush=True)
    with BenchStack({"GRAPH_GLOBAL_CONCURRENCY": str(args.global_concurrency)}, simulator=args.simulator) as stack:
        sim = stack.sim
        api = stack.api()
        directory = make_directory(sim, f"{stack.app_url}/api/oauth/callback")
        system = new_system()
        configure(api, system, directory)
        per_box = [n // args.mailboxes + (1 if i < n % args.mailboxes else 0) for i in range(args.mailboxes)]
        spread = [] if args.skip_mailboxes else [
            (f"staff{i + 1:02d}", f"staff{i + 1:02d}@{directory.domain}", count) for i, count in enumerate(per_box)]
        for subject, address, _ in spread:
            sim.control.create_user(directory.tenant_id, address, f"Staff member {subject[5:]}")
        connect_users(stack, system, directory, [("solo", directory.staff)] + [(s, a) for s, a, _ in spread])
        # A warm instance: the token cache, the data key and the HTTPS pools in use once (not measured).
        warm = api.get(f"/api/systems/{system}/connections/user/solo/calendars")
        if warm.status_code != 200:
            raise RuntimeError(f"warm-up failed: {warm.status_code} {warm.text}")
        graph = sim.graph
        graph.set_latency(fixed_ms=args.latency_ms, jitter_ms=0)
        graph.set_throttling(enabled=True, concurrency=IN_FLIGHT)
        print(f"  (stack up and {1 + len(spread)} users connected through OAuth in "
              f"{time.perf_counter() - began:.1f} s)", flush=True)

        # 1. one mailbox
        first_day = datetime.now(UTC).date() + timedelta(days=1)
        items = shift_items(n, first_day=first_day)
        solo = export_run(stack, system, [("solo", directory.staff, items)], threads=args.workers,
                          timeout=max(120.0, n * latency))
        bound = n * latency / IN_FLIGHT
        ratio = solo.wall / bound if bound else float("inf")
        peak = solo.graph.peak_in_flight.get(directory.staff.lower(), 0)
        print(f"\nOne mailbox: {n} occurrences, one job ({len(solo.chunks)} chunk messages)", flush=True)
        report.figure("wall time (start_export to job completed)", solo.wall, ".2f", "s")
        report.figure(f"bound {n} x {args.latency_ms:g} ms / {IN_FLIGHT}", bound, ".2f", "s")
        report.figure("ratio to bound", ratio, ".2f", "x", "ratio_to_bound")
        report.figure("Graph round trips (simulator)", solo.graph.round_trips, "d", "", "round_trips",
                      f"{solo.graph.envelopes} $batch + {solo.graph.direct_requests} single; "
                      f"{solo.graph.batch_items} batch items")
        ex = solo.executor
        report.figure("Graph round trips (executor stats)", ex.get("round_trips", -1), "d", "", None,
                      f"items sent {ex.get('items_sent', 0)}, retried {ex.get('retried_items', 0)}, "
                      f"throttled {ex.get('throttled_items', 0)}, envelopes resent {ex.get('envelope_retries', 0)}")
        report.figure("peak in flight in the mailbox", peak, "d", "", None, f"Outlook's limit {IN_FLIGHT}")
        report.figure("throttling violations (429)", solo.graph.throttled, "d", "", "violations",
                      f"concurrency {solo.graph.throttled_concurrency}, budget {solo.graph.throttled_budget}")
        report.figure("events in the mailbox", solo.audit.events, "d", "", None, f"expected {n}")
        report.figure("duplicates", solo.audit.duplicates, "d", "", "duplicates")
        report.figure("missing", solo.audit.missing, "d", "", "missing")
        if solo.audit.mismatched or solo.failed_jobs:
            report.line("events with wrong title or start", str(solo.audit.mismatched))
            report.line("jobs not completed cleanly", str(len(solo.failed_jobs)))
        _breakdown(report, solo, n, latency)

        # 2. sequential client
        speedup = float("nan")
        if not args.skip_sequential:
            seq = sequential_run(stack, directory, system, directory.other_staff, items)
            speedup = seq.wall / solo.wall
            print("\nSequential client: one POST per event, one at a time, same events to a second mailbox", flush=True)
            report.figure("wall time", seq.wall, ".2f", "s", None,
                          f"{seq.requests} requests, {seq.created} created, {seq.throttled} throttled")
            report.figure("per event", seq.wall / max(seq.requests, 1) * 1000, ".1f", "ms", None,
                          f"of which Graph latency {args.latency_ms:g} ms")
            report.figure("speed-up of the export over it", speedup, ".2f", "x", "speedup_vs_sequential")

        # 3. many mailboxes
        ratio_spread = float("nan")
        if spread:
            first_day_spread = first_day + timedelta(days=400)
            subjects = [(s, a, shift_items(c, first_day=first_day_spread, prefix=s)) for s, a, c in spread]
            many = export_run(stack, system, subjects, threads=args.workers, timeout=max(120.0, n * latency))
            workers = min(args.global_concurrency, args.workers, len(spread))
            per_mailbox = [sum(batch_seconds(b, latency) for b in batches_for(c)) for _, _, c in spread]
            total_batch = sum(per_mailbox)
            bound_spread = max(max(per_mailbox), total_batch / workers)
            ratio_spread = many.wall / bound_spread
            envelopes = sum(len(batches_for(c)) for _, _, c in spread)
            print(f"\n{len(spread)} mailboxes: {n} occurrences ({min(per_box)}-{max(per_box)} each), one job per "
                  "mailbox, all started together", flush=True)
            report.figure("wall time (first start_export to last job completed)", many.wall, ".2f", "s")
            one_batch = batch_seconds(PER_BATCH, latency)
            report.line("bound", f"{bound_spread:.2f} s",
                        f"max(slowest mailbox {max(per_mailbox):.3f} s, {envelopes} batches x "
                        f"{one_batch:.3f} s / {workers} at once = {total_batch / workers:.3f} s)")
            report.line("", "", f"a batch of 20 takes 20/4 x L; {workers} = min(GRAPH_GLOBAL_CONCURRENCY "
                        f"{args.global_concurrency}, worker threads {args.workers}, mailboxes {len(spread)})")
            report.figure("ratio to bound", ratio_spread, ".2f", "x", None, "no target set")
            cores = len(os.sched_getaffinity(0))
            used = {name: many.cpu.get(name, 0.0) for name in ("app", "azurite", "simulator")}
            floor = sum(used.values()) / cores  # no schedule of this work on this machine finishes sooner
            report.line("CPU floor of this machine", f"{floor:.2f} s",
                        f"CPU of the app {used['app']:.2f} + Azurite {used['azurite']:.2f} + the simulator "
                        f"{used['simulator']:.2f} s over {cores} cores: {floor / bound_spread:.2f} x the bound; "
                        f"the wall time is {many.wall / floor:.2f} x it")
            report.figure("Graph round trips", many.graph.round_trips, "d", "", None,
                          f"{many.graph.envelopes} $batch + {many.graph.direct_requests} single; ideal {envelopes}")
            report.figure("peak in flight in any mailbox", max(many.graph.peak_in_flight.values(), default=0), "d",
                          "", None, f"Outlook's limit {IN_FLIGHT}")
            report.figure("throttling violations (429)", many.graph.throttled, "d", "")
            report.figure("duplicates", many.audit.duplicates, "d", "")
            report.figure("missing", many.audit.missing, "d", "")
            _breakdown(report, many, n, latency, per_mailbox=False)

        print(f"\n(total benchmark time {time.perf_counter() - began:.1f} s)\n", flush=True)
        print(f"ratio_to_bound: {ratio:.2f}")
        print(f"speedup_vs_sequential: {speedup:.2f}")
        print(f"round_trips: {solo.graph.round_trips}")
        print(f"violations: {solo.graph.throttled}")
        print(f"duplicates: {solo.audit.duplicates}")
        print(f"missing: {solo.audit.missing}")
        print(f"ratio_to_bound_50_mailboxes: {ratio_spread:.2f}", flush=True)
    if args.check and (report.missed or solo.failed_jobs):
        return 1
    return 0


def _breakdown(report: Report, run: RunResult, n: int, latency: float, *, per_mailbox: bool = True) -> None:
    """Where the wall time went, from the simulator's timeline of $batch envelopes."""
    tl = run.timeline
    if not tl.envelopes:
        return
    print("  where the time went:", flush=True)
    if len(run.start_spans) == 1:
        report.line("  start_export (store items, chunks, enqueue)", f"{run.start_spans[0][1]:.2f} s")
    else:
        took = [end - began for began, end in run.start_spans]
        report.line("  start_export calls, all returned", f"+{max(e for _, e in run.start_spans):.2f} s",
                    f"{len(took)} calls, each {min(took):.2f}-{max(took):.2f} s, mean {sum(took) / len(took):.2f} s")
    report.line("  first chunk message picked up", f"+{run.first_pickup:.2f} s")
    report.line("  first $batch reaches Graph", f"+{tl.first_start:.2f} s")
    report.line("  last $batch answered", f"+{tl.last_end:.2f} s")
    report.line("  job seen completed", f"+{run.wall:.2f} s", f"tail {run.wall - tl.last_end:.2f} s")
    if per_mailbox:
        ideal = batch_seconds(PER_BATCH, latency)
        report.line("  Graph busy with envelopes (one mailbox)", f"{tl.busy:.2f} s",
                    f"ideal {n / IN_FLIGHT * latency:.2f} s")
        report.line("  mean envelope time", f"{tl.mean_envelope * 1000:.0f} ms", f"ideal {ideal * 1000:.0f} ms")
        if tl.gaps:
            report.line("  idle gaps between envelopes", f"{sum(tl.gaps):.2f} s",
                        f"{len(tl.gaps)} gaps, mean {sum(tl.gaps) / len(tl.gaps) * 1000:.1f} ms, "
                        f"max {max(tl.gaps) * 1000:.0f} ms")
    if run.pool_full:
        report.line("  connections dropped: client pool full", str(run.pool_full),
                    "more threads than a storage client's urllib3 pool (10) keeps")
    if run.chunks:
        spans = [d.finished_at - d.started_at for d in run.chunks]
        report.line("  chunk messages", str(len(run.chunks)),
                    f"each {min(spans):.2f}-{max(spans):.2f} s, mean {sum(spans) / len(spans):.2f} s")
    _cost(report, run, n)


def _cost(report: Report, run: RunResult, n: int) -> None:
    """The cost model: CPU per occurrence of the app, Azurite and the simulator, and the app's table and queue
    requests per job and per chunk, by operation."""
    jobs = len(run.start_spans)
    chunks = len(run.chunks)
    print("  cost:", flush=True)
    for name, who in (("app", "this process (app, queue worker, SDKs)"), ("azurite", "Azurite (tables, queues)"),
                      ("simulator", "the simulator (Graph)")):
        if name in run.cpu:
            report.line(f"  CPU of {who}", f"{run.cpu[name] / n * 1000:.2f} ms",
                        f"an occurrence; {run.cpu[name]:.2f} s in all")
    by_scope: dict[str, dict[str, int]] = {}
    for key, count in run.storage_ops.items():
        scope, _, op = key.partition(": ") if ": " in key else ("other", "", key)
        by_scope.setdefault(scope, {})[op] = count
    work = sum(sum(by_scope.get(scope, {}).values()) for scope in ("start", "chunk", "other"))
    report.line("  table and queue requests a job", f"{work / max(jobs, 1):.1f}",
                f"{work} for {n} occurrences; status reads while it ran not counted")
    for scope, per, label in (("start", jobs, "start_export, a job"), ("chunk", chunks, "a chunk message"),
                              ("other", jobs, "other, a job"), ("poll", jobs, "status reads, a job")):
        ops = by_scope.get(scope)
        if ops and per:
            report.line(f"    {label}", f"{sum(ops.values()) / per:.1f}")
            storage_breakdown(report, ops, per, "", indent="      ")


if __name__ == "__main__":
    sys.exit(main())
