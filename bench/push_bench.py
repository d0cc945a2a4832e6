"""Change-notification (push) benchmark: how fast an Outlook booking reaches the host's feed when Microsoft Graph
notifies the app, and what it costs in Graph requests against polling (`bench/push`, or
`python -m bench.push_bench --help`).

The real app (its registered functions: the anonymous notification endpoint served over HTTPS with the local CA, as
Graph only posts to https URLs, and the `room_pull` and `subscription-work` queue functions run by queue workers as
the Functions host runs them) against Azurite and the Microsoft simulator, which delivers change notifications from
a background thread with the configured latency (default 1 s) and faults, verifying the app's certificate against the
local CA. The simulator runs in a thread of this process (its notification sender must trust the local CA).

1. Set-up: R rooms (default 500) in an app-only system: an Exchange RBAC-for-Applications scope of the room
   mailboxes and the app's "Application Calendars.ReadWrite" role assignment limited to it, then one `PUT
   .../connections/space/{id}` per room (mode app, two-way) through the HTTP API; each gets its Graph subscription on
   the way (the simulator validates the notification and lifecycle URLs). A few bookings per room, and one cycle
   reads every calendar (the baseline).
2. One hour of bookings, compressed: B bookings per room (default 1) are made in Outlook (the simulator's control
   API) in random rooms at random moments, at a steady average rate. Each booking's latency runs from just before it
   is made to the end of the pull that published it in the room's feed (read through the HTTP API, by cursor, after
   every pull). Then the hour's safety-net sweep runs, as the pull timer would an hour later (rooms with a live
   subscription are swept once per PUSH_SWEEP_MINUTES).
3. The same hour again with 10% of change notifications lost (the simulator's drop fault): bookings whose
   notification was lost reach the feed with that sweep, none is missed.

Graph requests per room per hour, push: the requests the simulator served during the hour (the notifications'
pulls) and its sweep, plus the subscription renewals (one PATCH a room every LIFETIME - RENEW_BEFORE, ~96 h), over
the rooms. Polling every 5 minutes: 12 cycles an hour, each costing what the sweep cost a room (one incremental
delta request). With push the cost follows the bookings (about one request a booking, fewer when notifications of a
room coalesce) and the sweep; polling costs the same however quiet the room is.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.report import Report, Target
from bench.stack import REPO, BenchStack, Delivery, QueueWorker, chunks, host_queues, run_all, run_bench

PULL_QUEUE = "room-pull"
SUBSCRIPTION_QUEUE = "subscription-work"
ROLE = "Application Calendars.ReadWrite"
POLL_MINUTES = 5
QUIET = 5.0  # seconds without a booking reaching the feed, once Graph sent everything, that end an hour's wait


@dataclass
class Room:
    subject: str
    address: str
    cursor: str = "0"
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Booking:
    room: Room
    event_id: str
    made: float  # time.perf_counter() just before it was made in Outlook
    seen: float | None = None  # the end of the pull that published it
    phase: str = ""
    swept: bool = False  # published by the hourly sweep (its notification was lost): reported apart

    @property
    def latency(self) -> float:
        assert self.seen is not None
        return self.seen - self.made


@dataclass
class Hour:
    name: str
    bookings: list[Booking]
    seconds: float  # how long the bookings took to make
    requests: int  # Graph requests the simulator served during the hour (until every booking or the timeout)
    sweep_requests: int = 0
    caught_by_sweep: int = 0
    notifications: dict[str, int] = field(default_factory=dict)
    endpoint: dict[str, int] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        return sorted(b.latency for b in self.bookings if b.seen is not None and not b.swept)


class Fleet:
    """The directory, the app-only system, its rooms and what the host reads of them."""

    def __init__(self, stack: BenchStack, rooms: int, threads: int) -> None:
        from tests.helpers import configure, make_directory, new_system

        self.stack = stack
        self.control = stack.sim.control
        self.graph = stack.sim.graph
        self.directory = make_directory(stack.sim, f"{stack.app_url}/api/oauth/callback")
        tenant = self.directory.tenant_id
        self.control.create_management_scope(tenant, "Rooms", "RecipientTypeDetails -eq 'RoomMailbox'")
        self.control.assign_management_role(tenant, self.directory.client_id, ROLE, "Rooms")
        self.system = new_system()
        configure(stack.api(), self.system, self.directory, app_access={"enabled": True, "tenant_id": tenant})
        self.rooms = [Room(f"room-{i:05d}", f"room-{i:05d}@{self.directory.domain}") for i in range(rooms)]
        for chunk in chunks(self.rooms, 500):
            stack.sim.bulk([{"op": "rooms", "tenant": tenant, "addresses": [r.address for r in chunk],
                             "names": [f"Room {r.subject}" for r in chunk]}])
        self.threads = threads
        self._local = threading.local()

    def api(self) -> Any:
        client = getattr(self._local, "api", None)
        if client is None:
            client = self._local.api = self.stack.api()
        return client

    def connect(self) -> None:
        """What a host does per room in app mode: one PUT with the room's address (no sign-in)."""

        def one(room: Room) -> None:
            response = self.api().put(f"/api/systems/{self.system}/connections/space/{room.subject}",
                                      json={"mode": "app", "sync_resource": room.address, "two_way": True})
            if response.status_code not in (200, 201):
                raise RuntimeError(f"PUT {room.subject}: {response.status_code} {response.text}")

        run_all(one, self.rooms, self.threads)

    def populate(self, per_room: int) -> None:
        start = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0) + timedelta(days=1)
        bodies = [booking(f"Booked before {k}", start + timedelta(days=k)) for k in range(per_room)]
        if per_room:
            for chunk in chunks(self.rooms, 100):
                self.stack.sim.bulk([{"op": "populate", "mailbox": r.address, "events": bodies,
                                      "as_user": self.directory.other_staff} for r in chunk])

    def read_feed(self, room: Room) -> list[dict[str, Any]]:
        """The room's new feed entries, by cursor, as the host reads them."""
        with room.lock:
            changes: list[dict[str, Any]] = []
            while True:
                response = self.api().get(f"/api/systems/{self.system}/connections/space/{room.subject}"
                                          f"/external-events?cursor={room.cursor}&limit=500")
                if response.status_code != 200:
                    raise RuntimeError(f"feed of {room.subject}: {response.status_code} {response.text}")
                body = response.json()
                room.cursor = body["next_cursor"]
                changes.extend(body["changes"])
                if not body["more"]:
                    return changes


def booking(subject: str, start: datetime) -> dict[str, Any]:
    end = start + timedelta(hours=1)
    return {"subject": subject, "start": {"dateTime": f"{start:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
            "end": {"dateTime": f"{end:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"}}


class Watch:
    """After every room pull: the room's feed read through the API, and each awaited booking found in it marked seen
    at the end of that pull."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.by_room = {r.subject: r for r in fleet.rooms}
        self.awaited: dict[str, Booking] = {}
        self.lock = threading.Lock()
        self.last_seen = time.perf_counter()

    def expect(self, made: Booking) -> None:
        with self.lock:
            self.awaited[made.event_id] = made

    def after_pull(self, delivery: Delivery) -> None:
        room = self.by_room.get(str(delivery.body.get("id")))
        if room is None or delivery.error is not None:
            return
        for change in self.fleet.read_feed(room):
            with self.lock:
                made = self.awaited.pop(change["event_id"], None)
            if made is not None and change["type"] == "created":
                made.seen = delivery.finished_at
                self.last_seen = time.perf_counter()

    def pending(self) -> int:
        with self.lock:
            return len(self.awaited)


def registered(host: Any, name: str) -> Callable[[dict[str, Any]], None]:
    """A registered queue function, run as the host runs it (`LocalFunctionsHost.invoke`: a QueueMessage)."""
    return lambda body: host.invoke(name, json.dumps(body))


def one_hour(fleet: Fleet, watch: Watch, name: str, per_room: float, rate: float, rng: random.Random,
             wait: float) -> Hour:
    """B bookings a room, made at random in random rooms at `rate` a second on average, then waited for."""
    sim = fleet.stack.sim
    app_counters = fleet.stack.services().notifications.counters
    count = max(1, round(per_room * len(fleet.rooms)))
    sim.clear_timeline()
    sent0, endpoint0 = fleet.control.notification_counters(), app_counters.snapshot()
    made: list[Booking] = []
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    started = time.perf_counter()
    due = started
    for k in range(count):
        due += rng.expovariate(rate)
        time.sleep(max(0.0, due - time.perf_counter()))
        room = rng.choice(fleet.rooms)
        start = first + timedelta(hours=rng.randrange(24 * 60))
        before = time.perf_counter()
        event = fleet.graph.create_event(room.address, booking(f"{name} booking {k}", start),
                                         as_user=fleet.directory.other_staff)
        entry = Booking(room, str(event["id"]), before, phase=name)
        watch.expect(entry)
        made.append(entry)
    seconds = time.perf_counter() - started
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline and any(b.seen is None for b in made):
        # Notifications lost to a fault leave bookings for the sweep: stop once Graph has nothing more to send
        # and nothing has reached the feed for a while.
        if fleet.control.flush_notifications(0.0)["flushed"] and time.perf_counter() - watch.last_seen > QUIET:
            break
        time.sleep(0.05)
    requests = len([s for s in sim.served() if s.path.startswith("/v1.0/")])
    sent = {k: v - sent0.get(k, 0) for k, v in fleet.control.notification_counters().items()
            if isinstance(v, int) and k != "queued"}
    endpoint = {k: v - endpoint0.get(k, 0) for k, v in app_counters.snapshot().items()}
    return Hour(name, made, seconds, requests, notifications=sent, endpoint={k: v for k, v in endpoint.items() if v})


def hourly_sweep(fleet: Fleet, watch: Watch, worker: QueueWorker, hour: Hour, offset: timedelta) -> None:
    """The pull timer's tick an hour on (`offset` ahead of now): rooms with a live subscription are due again."""
    from shared.runtime import build_services
    from shared.settings import Settings

    sim = fleet.stack.sim
    later = build_services(Settings.from_env(os.environ), clock=lambda: datetime.now(UTC) + offset)
    unseen = {b.event_id for b in hour.bookings if b.seen is None}
    sim.clear_timeline()
    handled = worker.handled
    queued = later.pull.enqueue_all()
    deadline = time.perf_counter() + 600
    while worker.handled - handled < queued and time.perf_counter() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    hour.sweep_requests = len([s for s in sim.served() if s.path.startswith("/v1.0/")])
    hour.caught_by_sweep = sum(1 for b in hour.bookings if b.event_id in unseen and b.seen is not None)
    for entry in hour.bookings:
        if entry.event_id in unseen and entry.seen is not None:
            entry.swept = True


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(share * len(values)) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=500, help="app-only rooms with subscriptions (500)")
    parser.add_argument("--bookings-per-room", type=float, default=1.0,
                        help="bookings a room gets in the hour each phase stands for (1)")
    parser.add_argument("--rate", type=float, default=10.0, help="bookings made a second, on average (10)")
    parser.add_argument("--delivery-latency", type=float, default=1.0,
                        help="seconds from a change to its notification (the simulator's; 1)")
    parser.add_argument("--loss", type=float, default=0.10, help="share of notifications lost in phase 3 (0.1)")
    parser.add_argument("--latency-ms", type=float, default=25.0, help="Graph latency per request (25)")
    parser.add_argument("--events", type=int, default=5, help="bookings per room before the baseline (5)")
    parser.add_argument("--workers", type=int, default=None, help="queue workers (default host.json batchSize)")
    parser.add_argument("--threads", type=int, default=8, help="API calls at once during set-up (8)")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the last bookings after they were made (30)")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--verbose", action="store_true", help="the app's INFO logs")
    args = parser.parse_args(argv)
    if args.rooms < 1 or args.bookings_per_room <= 0 or args.rate <= 0 or not 0 <= args.loss < 1:
        parser.error("rooms, bookings and rate must be positive, loss in [0, 1)")
    return run_bench(lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    import function_app
    from devstack.host import LocalFunctionsHost
    from devstack.ports import free_port
    from devstack.serving import serve_in_thread, shutdown
    from shared.subscriptions import LIFETIME, RENEW_BEFORE

    began = time.perf_counter()
    workers = args.workers or host_queues().batch_size
    rng = random.Random(args.seed)
    https_port = free_port()
    sweep_minutes = 60
    settings = {"NOTIFICATION_BASE_URL": f"https://127.0.0.1:{https_port}", "PUSH_SWEEP_MINUTES": str(sweep_minutes),
                "PUSH_COALESCE_SECONDS": "1"}
    print(f"Push benchmark: {args.rooms} app-only rooms with change-notification subscriptions, "
          f"{args.bookings_per_room:g} booking(s) a room in each hour, made at {args.rate:g} a second; notification "
          f"delivery latency {args.delivery_latency:g} s, Graph latency {args.latency_ms:g} ms, {workers} queue "
          "workers (host.json batchSize), simulator in a thread", flush=True)
    with BenchStack(settings, simulator="thread") as stack:
        if stack.tls is None:
            raise RuntimeError("the stack has no local CA")
        stack.sim.running.sim.notification_ca = stack.tls.ca_path  # the simulator trusts the local CA
        # The app over HTTPS, where Graph posts: the same registered functions, another port.
        host = LocalFunctionsHost(function_app.app, host_json=json.loads((REPO / "host.json").read_text()),
                                  env=dict(os.environ), function_key="bench-function-key",
                                  master_key="bench-master-key", storage_connection_string=stack.connection_string)
        server = serve_in_thread(host.wsgi_app, https_port, name="bench-app-https",
                                 ssl_context=stack.tls.server_context())
        try:
            return _phases(args, stack, host, workers, rng, sweep_minutes, began, LIFETIME - RENEW_BEFORE)
        finally:
            shutdown(server)
            host.stop()


def _phases(args: argparse.Namespace, stack: BenchStack, host: Any, workers: int, rng: random.Random,
            sweep_minutes: int, began: float, renew_every: timedelta) -> int:
    graph = stack.sim.graph
    graph.set_latency(0, 0)
    t = time.perf_counter()
    fleet = Fleet(stack, args.rooms, args.threads)
    fleet.populate(args.events)
    fleet.connect()
    subscriptions = len(fleet.control.list_subscriptions(fleet.directory.tenant_id))
    print(f"\nSet-up: {args.rooms} rooms created, scoped (RBAC for Applications) and connected in app mode through "
          f"the API with {subscriptions} subscriptions: {time.perf_counter() - t:.1f} s", flush=True)
    if subscriptions != args.rooms:
        raise RuntimeError(f"{subscriptions} subscriptions for {args.rooms} rooms")
    graph.set_latency(fixed_ms=args.latency_ms, jitter_ms=0)
    fleet.control.set_notification_latency(args.delivery_latency)
    watch = Watch(fleet)
    subscription_worker = QueueWorker(stack.connection_string, SUBSCRIPTION_QUEUE,
                                      registered(host, "subscription_work"), threads=2, poll_interval=0.1)
    with subscription_worker, QueueWorker(stack.connection_string, PULL_QUEUE, registered(host, "room_pull"),
                                          threads=workers, poll_interval=0.1, on_done=watch.after_pull) as worker:
        t = time.perf_counter()
        queued = stack.services().pull.enqueue_all()  # the baseline: every calendar read once
        while worker.handled < queued:  # the watch reads each room's feed after its pull: the host is up to date
            time.sleep(0.05)
        print(f"Baseline: {queued} rooms read: {time.perf_counter() - t:.1f} s", flush=True)

        offset = timedelta(minutes=sweep_minutes + 1)
        clean = one_hour(fleet, watch, "push", args.bookings_per_room, args.rate, rng, args.wait)
        hourly_sweep(fleet, watch, worker, clean, offset)
        fleet.control.set_notification_faults(drop_rate=args.loss, seed=args.seed)
        lossy = one_hour(fleet, watch, "lossy", args.bookings_per_room, args.rate, rng, args.wait)
        hourly_sweep(fleet, watch, worker, lossy, offset * 2)
        fleet.control.set_notification_faults()
        failed = worker.failed

    renewals = 1 / (renew_every.total_seconds() / 3600)  # PATCHes a room an hour
    polling = clean.sweep_requests / args.rooms * (60 / POLL_MINUTES)
    targets = {"push_latency_p95_s": Target("<=", 5.0), "graph_requests_per_room_hour": Target("<=", polling),
               "missed": Target("==", 0)}
    report = Report(targets, width=46)
    figures: dict[str, float] = {}
    for hour in (clean, lossy):
        figures.update(_report_hour(report, hour, args, sweep_minutes, renewals))
    missed = sum(1 for h in (clean, lossy) for b in h.bookings if b.seen is None)
    print("\nPolling every 5 minutes instead (what the sweep cost a room, 12 times an hour)", flush=True)
    report.figure("Graph requests per room per hour", polling, ".2f",
                  note=f"{clean.sweep_requests / args.rooms:.3f} a room a cycle")
    print("", flush=True)
    report.figure("push latency p95", figures["push_p95"], ".2f", "s", target="push_latency_p95_s")
    report.figure("Graph requests per room per hour, push", figures["push_per_room_hour"], ".2f",
                  target="graph_requests_per_room_hour", note=f"polling every 5 minutes: {polling:.2f}")
    report.figure("missed (never published)", missed, "d", target="missed",
                  note=f"of {len(clean.bookings) + len(lossy.bookings)}; room-pull messages failed: {failed}")
    print(f"\n(total benchmark time {time.perf_counter() - began:.1f} s)\n", flush=True)
    print(f"push_latency_p50_s: {figures['push_p50']:.2f}")
    print(f"push_latency_p95_s: {figures['push_p95']:.2f}")
    print(f"push_latency_max_s: {figures['push_max']:.2f}")
    print(f"graph_requests_per_room_hour: {figures['push_per_room_hour']:.2f}")
    print(f"graph_requests_per_room_hour_polling: {polling:.2f}")
    print(f"graph_requests_per_room_hour_lossy: {figures['lossy_per_room_hour']:.2f}")
    print(f"missed: {missed}")
    return 1 if args.check and report.missed else 0


def _report_hour(report: Report, hour: Hour, args: argparse.Namespace, sweep_minutes: int,
                 renewals: float) -> dict[str, float]:
    latencies = hour.latencies()
    lost = hour.notifications.get("dropped", 0)
    title = "One hour of bookings" if hour.name == "push" else \
        f"The same hour with {args.loss:.0%} of change notifications lost"
    print(f"\n{title}: {len(hour.bookings)} bookings made in Outlook in {hour.seconds:.1f} s", flush=True)
    p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
    worst = latencies[-1] if latencies else float("nan")
    report.line("latency, Outlook change to the host's feed", f"{p50:.2f} s",
                f"p50; p95 {p95:.2f} s, max {worst:.2f} s, over {len(latencies)} bookings pulled on notification")
    if hour.caught_by_sweep or lost:
        report.line("caught by the hourly sweep", str(hour.caught_by_sweep),
                    f"bookings whose notification was lost ({lost} notifications dropped)")
    report.line("notifications", str(hour.notifications.get("sent", 0)),
                f"sent by Graph in {hour.notifications.get('posts', 0)} POSTs; the endpoint: "
                + ", ".join(f"{k} {v}" for k, v in sorted(hour.endpoint.items())))
    per_room_hour = (hour.requests + hour.sweep_requests) / args.rooms + renewals
    report.line("Graph requests", str(hour.requests),
                f"{hour.requests / max(1, len(hour.bookings)):.2f} a booking; the sweep {hour.sweep_requests} "
                f"(once per {sweep_minutes} min)")
    report.line("Graph requests per room per hour", f"{per_room_hour:.2f}",
                f"(hour + sweep) / rooms + renewals {renewals:.4f}")
    prefix = "push" if hour.name == "push" else "lossy"
    return {f"{prefix}_p50": p50, f"{prefix}_p95": p95, f"{prefix}_max": worst,
            f"{prefix}_per_room_hour": per_room_hour}


if __name__ == "__main__":
    import sys

    sys.exit(main())
