"""Room-calendar pull benchmark: the real app (its services and registered functions, in this process) against
Azurite and the Microsoft simulator (in its own process), measured in one run (`bench/pull`, or
`python -m bench.pull_bench --help`).

Rooms are space connections with two-way sync on, each pointed at its own room mailbox in the simulator (delegated
to one staff account, who signs in once per room through the OAuth flow). Each room calendar holds E bookings made
"in Outlook" (default 300) and two of the product's own events, exported through the HTTP API
(`PUT .../items/{item}`), so that echoes can be seen.

1. Baseline: the timer (`PullService.enqueue_all`) queues one `room-pull` message per room and `workers` queue
   workers (host.json batchSize) run the registered `room_pull` function for each message, as the Functions host
   does. Reported apart: it reads every event once.
2. 1% of each room's events change in Outlook (3 of 300: a booking made, one moved, one cancelled; in one room in
   ten, one of the product's own events is moved or deleted in Outlook instead), and in another room in ten the
   product itself moves one of its own events through the export API (its own write: it must not come back).
3. The measured incremental cycle, run by a newly started instance (bench/pull_worker.py, a process of its own
   running the timer's fan-out and `workers` queue workers, as one Functions instance does): Graph requests during
   it (simulator counters) per room; wall time from the timer firing to the last message done, against the bound
   rooms x L / workers (each room's incremental pull needs one delta request of latency L, and `workers` pulls run
   at once); where the time went (CPU of the instance, of Azurite, of the simulator; table and queue requests).
   Every room's feed is then read through the HTTP API, as the host reads it, and compared with what was changed:
   `echoes` are the product's own events published as external bookings (created, updated, removed); `missed` are
   changes made in Outlook with no matching entry (created, updated, removed; own_event_changed,
   own_event_deleted).
4. Memory: the instance's peak resident memory in that cycle (/proc VmHWM) and how much the cycle grew it over the
   idle instance. Then rooms are added up to R_large (default 1,500, so that a default run takes minutes; `--full`
   5,000), their calendars read by a baseline cycle, 1% of all events change, and a new instance runs the same
   measurement over all R_large rooms. `memory_ratio_5000_vs_500` is the ratio of the two peaks (the name is kept
   whatever R_large is; the report says which sizes); the ratio of the growths is printed too.

Shortcuts, each stated in the output: `--signed-in` rooms (default 16) sign in through the real OAuth flow; the
other rooms' connections are written in bulk with the product's own models, codec and cipher, cloned from the first
room's (sign-ins are not what this measures, and 5,000 of them take longer than the whole benchmark may). The rooms
added for the second memory measurement hold no product-exported events; by default they hold fewer bookings than
the first rooms (`--large-events`), changed 1% as well (one booking in every tenth room when they hold ten).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import subprocess  # nosec B404 - the benchmark starts its own worker process
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.report import Report, Target, storage_breakdown
from bench.stack import (
    POOL_FULL,
    REPO,
    BenchStack,
    QueueWorker,
    chunks,
    cpu_now,
    host_queues,
    run_all,
    run_bench,
)

PULL_QUEUE = "room-pull"
# How long a received room-pull message stays hidden from other workers. A pull takes seconds; a receive whose answer
# is lost on its way (its connection reset under it) hides its messages from everyone for this long, so it is a
# minute, not the 10 minutes of a function's timeout, or the cycle would stall that long.
LEASE = 60
DEFAULT_LARGE_ROOMS = 1500  # the memory run of a default run: 3 x the rooms, in minutes
FULL_LARGE_ROOMS = 5000  # --full: the 10 x
LOCATION = "main"
OWN_OCCURRENCES = ("o0", "o1")  # the product's own events per room: one item, two occurrences
EVENT_STEP = timedelta(hours=12)  # Outlook bookings: one every 12 hours from tomorrow 06:00, an hour long
EXTERNAL_TYPES = ("created", "updated", "removed")


# --- targets and the report ------------------------------------------------------------------------------------


TARGETS = {
    "requests_per_room": Target("<=", 1.05),
    # The measured incremental cycle's table and queue requests and the instance's CPU a room, 3 changes each: at
    # most 6 (15 before) and half of the 27.3 ms measured before (issue #16).
    "storage_requests_per_room": Target("<=", 6),
    "instance_cpu_ms_per_room": Target("<=", 13.7),
    "memory_ratio_5000_vs_500": Target("<=", 1.3),
    "echoes": Target("==", 0),
    "missed": Target("==", 0),
}
FLEET = 100  # rooms from which the per-room targets of the measured cycle apply


# --- the rooms -------------------------------------------------------------------------------------------------


@dataclass
class Room:
    index: int
    subject: str  # the space connection's ID in the host app
    address: str  # its room mailbox
    events: list[str] = field(default_factory=list)  # Outlook bookings' event IDs, in creation order
    own: dict[str, str] = field(default_factory=dict)  # occurrence key -> sync ID (the product's own events)
    own_start: dict[str, datetime] = field(default_factory=dict)
    next_event: int = 0  # the next booking a change round moves or cancels
    created: int = 0  # bookings made by change rounds


@dataclass
class Expected:
    """What one change round did to a room: the feed entries the next cycle must publish, and the product's own
    events it changed itself (which must not come back)."""

    external: dict[str, str] = field(default_factory=dict)  # event ID -> created / updated / removed
    own: dict[str, str] = field(default_factory=dict)  # own event ID -> own_event_changed / own_event_deleted
    own_writes: set[str] = field(default_factory=set)


def tomorrow() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def graph_time(value: datetime) -> dict[str, str]:
    return {"dateTime": value.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def booking(subject: str, start: datetime, minutes: int = 60) -> dict[str, Any]:
    return {"subject": subject, "start": graph_time(start), "end": graph_time(start + timedelta(minutes=minutes))}


def outlook_bookings(count: int, first: datetime) -> list[dict[str, Any]]:
    """`count` one-hour bookings, one every 12 hours from `first` 06:00 (300 of them span 150 days: inside the
    pull's 180-day window)."""
    start = first + timedelta(hours=6)
    return [booking(f"Outlook booking {k}", start + k * EVENT_STEP) for k in range(count)]


def own_item(first: datetime, shift: timedelta = timedelta(0)) -> dict[str, Any]:
    """The product's own booking of a room: two occurrences at 03:00 on the first two days (no Outlook booking
    overlaps them); `shift` moves the second."""
    occurrences = []
    for day, key in enumerate(OWN_OCCURRENCES):
        start = first + timedelta(days=day, hours=3) + (shift if key == "o1" else timedelta(0))
        occurrences.append({"key": key, "start": start.strftime("%Y-%m-%dT%H:%M:%S"),
                            "end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "time_zone": "UTC"})
    return {"patron": {"first_name": "Ada", "last_name": "Lovelace"}, "occurrences": occurrences}


class Fleet:
    """The directory, the system and its rooms."""

    def __init__(self, stack: BenchStack) -> None:
        from tests.helpers import configure, make_directory, new_system

        self.stack = stack
        self.sim = stack.sim
        self.directory = make_directory(self.sim, f"{stack.app_url}/api/oauth/callback")
        self.system = new_system()
        api = stack.api()
        configure(api, self.system, self.directory)
        response = api.put(f"/api/systems/{self.system}/locations/{LOCATION}",
                           json={"title_mode": "patron_name", "populate_creator": True})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"location: {response.status_code} {response.text}")
        self.rooms: list[Room] = []
        self.first = tomorrow()
        self._local = threading.local()

    def api(self) -> Any:
        """One API client (requests session) per thread."""
        client = getattr(self._local, "api", None)
        if client is None:
            client = self._local.api = self.stack.api()
        return client

    def add_rooms(self, count: int, prefix: str = "room") -> list[Room]:
        """Room mailboxes in the simulator's tenant, each delegated (full access) to the staff member. The pull
        timer queues rooms in the order of their IDs."""
        start = len(self.rooms)
        rooms = [Room(i, f"{prefix}-{i:05d}", f"{prefix}-{i:05d}@{self.directory.domain}")
                 for i in range(start, start + count)]
        for chunk in chunks(rooms, 500):
            self.sim.bulk([{"op": "rooms", "tenant": self.directory.tenant_id,
                            "addresses": [r.address for r in chunk], "names": [f"Room {r.index}" for r in chunk],
                            "grantee": self.directory.staff_id}])
        self.rooms.extend(rooms)
        return rooms

    # --- connections -------------------------------------------------------------------------------------------

    def connect(self, rooms: list[Room], threads: int) -> None:
        """The real thing, per room: the OAuth authorization code flow through the app's API and the simulator's
        sign-in pages (as the staff member), then PATCH the room mailbox, location and two-way sync on."""
        from tests.helpers import connect

        def one(room: Room) -> None:
            api = self.api()
            connect(api, self.sim, self.system, "space", room.subject, self.directory.staff)
            response = api.patch(f"/api/systems/{self.system}/connections/space/{room.subject}",
                                 json={"sync_resource": room.address, "two_way": True, "location": LOCATION})
            if response.status_code != 200:
                raise RuntimeError(f"PATCH {room.subject}: {response.status_code} {response.text}")

        run_all(one, rooms, threads)

    def clone_connections(self, template: Room, rooms: list[Room]) -> None:
        """Connections for `rooms` without a sign-in each: the rows the OAuth callback and the PATCH write
        (connection, sealed token cache, its refresh-schedule entry, the pull index), made from `template`'s (which
        signed in) with the product's models, codec and cipher, written in transactions of 100. Every clone holds the
        same MSAL cache (the same staff account signed in), sealed for its own row."""
        from shared.models import PullTarget, RefreshDue, TokenCache

        services = self.stack.services()
        repos = services.repos
        model = repos.connections.find(self.system, "space", template.subject)
        cache_row = repos.token_caches.get(self.system, f"space:{template.subject}")
        if model is None or cache_row is None or not model.two_way:
            raise RuntimeError(f"{template.subject} is not connected with two-way sync")
        plain = services.cipher.open(cache_row.sealed, cache_row.context())
        now = datetime.now(UTC)
        connections, caches, due, targets = [], [], [], []
        for room in rooms:
            fields = {k: v for k, v in vars(model).items() if k != "etag"}
            connections.append(type(model)(**{**fields, "subject_id": room.subject, "sync_resource": room.address,
                                              "authorized_at": now, "token_refreshed_at": now, "updated_at": now}))
            cache = TokenCache(system=self.system, kind="space", subject_id=room.subject, sealed="", written_at=now,
                               due_at=cache_row.due_at)
            cache.sealed = services.cipher.seal(plain, cache.context())
            cache.key_version = cache_row.key_version
            caches.append(cache)
            if cache.due_at is not None:
                due.append(RefreshDue(due_at=cache.due_at, system=self.system, kind="space", subject_id=room.subject))
            targets.append(PullTarget(system=self.system, subject_id=room.subject))
        jobs = ([(repos.connections, c) for c in chunks(connections, 100)]
                + [(repos.token_caches, c) for c in chunks(caches, 100)]
                + [(repos.refresh_schedule, c) for c in chunks(due, 100)]
                + [(repos.pull_targets, c) for c in chunks(targets, 100)])
        run_all(lambda job: job[0].upsert_many(job[1]), jobs, 8)

    # --- calendars ---------------------------------------------------------------------------------------------

    def populate(self, rooms: list[Room], events: int) -> None:
        """`events` bookings per room made "in Outlook" by another staff member (simulator control, in bulk)."""
        bodies = outlook_bookings(events, self.first)

        def one(chunk: list[Room]) -> None:
            ids = self.sim.bulk([{"op": "populate", "mailbox": r.address, "events": bodies,
                                  "as_user": self.directory.other_staff} for r in chunk])
            for room, made in zip(chunk, ids, strict=True):
                room.events = list(made)

        if events:
            run_all(one, list(chunks(rooms, max(1, 6000 // events))), 2)

    def export_own(self, rooms: list[Room], threads: int) -> None:
        """The product's own booking of each room (two events) through the export API."""

        def one(room: Room) -> None:
            body = own_item(self.first)
            response = self.api().put(f"/api/systems/{self.system}/connections/space/{room.subject}/items/own",
                                      json=body)
            if response.status_code != 200:
                raise RuntimeError(f"PUT item of {room.subject}: {response.status_code} {response.text}")
            for occurrence in response.json()["occurrences"]:
                room.own[occurrence["key"]] = occurrence["sync_id"]
            room.own_start = {o["key"]: datetime.fromisoformat(o["start"]).replace(tzinfo=UTC)
                              for o in body["occurrences"]}

        run_all(one, rooms, threads)

    # --- changes -----------------------------------------------------------------------------------------------

    def change(self, rooms: list[Room], percent: float, round_no: int, threads: int) -> dict[str, Expected]:
        """`percent` of each room's bookings change in Outlook: made, moved (an hour later and renamed) and
        cancelled in turn; in one room in ten one of them is a change to the product's own event instead (moved,
        or deleted, alternately). In another room in ten the product moves one of its own events through the export
        API. A room with too few bookings for one change gets one in every so many rooms (1% of 10: one in ten)."""
        expected: dict[str, Expected] = {r.subject: Expected() for r in rooms}
        ops: list[dict[str, Any]] = []
        kinds: list[tuple[Room, str, str]] = []  # (room, feed entry type, event ID; "" until a creation answers)
        own_writes: list[Room] = []
        for position, room in enumerate(rooms):
            share = len(room.events) * percent / 100
            count = round(share) if share >= 1 else int((position + 1) * share) - int(position * share)
            plan = [("create", "update", "delete")[(k + room.index + round_no) % 3] for k in range(count)]
            if plan and room.index % 10 == 7 and "o0" in room.own:
                plan[-1] = "own_update" if (room.index // 10 + round_no) % 2 == 0 else "own_delete"
            for kind in plan:
                if kind == "create":
                    room.created += 1
                    start = self.first + timedelta(hours=9) + (room.created % 300) * EVENT_STEP
                    ops.append({"op": "create", "mailbox": room.address, "as_user": self.directory.other_staff,
                                "event": booking(f"Booked in Outlook {round_no}.{room.created}", start, 30)})
                    kinds.append((room, "created", ""))
                elif kind == "update":
                    event_id, start = self._take(room)
                    start += timedelta(hours=1)
                    ops.append({"op": "update", "id": event_id,
                                "changes": {"subject": f"Moved in Outlook ({round_no})", "start": graph_time(start),
                                            "end": graph_time(start + timedelta(hours=1))}})
                    kinds.append((room, "updated", event_id))
                elif kind == "delete":
                    event_id, _ = self._take(room)
                    ops.append({"op": "delete", "id": event_id})
                    kinds.append((room, "removed", event_id))
                elif kind == "own_update":
                    event_id = room.own["o0"]
                    start = room.own_start["o0"] + timedelta(hours=1)
                    room.own_start["o0"] = start
                    ops.append({"op": "update", "id": event_id,
                                "changes": {"start": graph_time(start), "end": graph_time(start + timedelta(hours=1))}})
                    kinds.append((room, "own_event_changed", event_id))
                else:  # own_delete: that event of the product's is gone from then on
                    event_id = room.own.pop("o0")
                    ops.append({"op": "delete", "id": event_id})
                    kinds.append((room, "own_event_deleted", event_id))
            if room.index % 10 == 3 and "o1" in room.own:
                own_writes.append(room)
        results: list[Any] = []
        for chunk in chunks(ops, 3000):
            results.extend(self.sim.bulk(chunk))
        for (room, kind, event_id), result in zip(kinds, results, strict=True):
            if kind == "created":
                expected[room.subject].external[str(result)] = kind
            elif kind in ("updated", "removed"):
                expected[room.subject].external[event_id] = kind
            else:
                expected[room.subject].own[event_id] = kind

        def write(room: Room) -> None:  # the product's own change: its o1 event moves half an hour
            item = own_item(self.first, timedelta(minutes=30 * (round_no + 1)))
            if "o0" not in room.own:  # as the host would have it after acting on the own_event_deleted report
                item["occurrences"] = [o for o in item["occurrences"] if o["key"] != "o0"]
            response = self.api().put(f"/api/systems/{self.system}/connections/space/{room.subject}/items/own",
                                      json=item)
            if response.status_code != 200:
                raise RuntimeError(f"PUT item of {room.subject}: {response.status_code} {response.text}")
            expected[room.subject].own_writes.add(room.own["o1"])

        run_all(write, own_writes, threads)
        return expected

    def _take(self, room: Room) -> tuple[str, datetime]:
        """The room's next untouched booking and its start."""
        k = room.next_event
        room.next_event += 1
        return room.events[k], self.first + timedelta(hours=6) + k * EVENT_STEP


# --- one cycle -------------------------------------------------------------------------------------------------


@dataclass
class Cycle:
    rooms: int
    wall: float  # timer fired -> last message done
    enqueue: float  # enqueue_all alone
    graph_requests: int
    delta_initial: int
    delta_incremental: int
    delta_pages: int
    statuses: dict[str, int]
    throttled: int
    failed: int  # messages whose function raised (put back, retried after the visibility timeout)
    storage_requests: int  # the app's table and queue requests
    storage_bytes: int  # bytes of their answers
    storage_ops: dict[str, int]  # requests by operation (shared.storage.transport.operation)
    cpu: dict[str, float]  # CPU seconds during the cycle: app (this process), azurite, simulator


class StorageMeter:
    """The app's table and queue requests (by operation) and the bytes of their answers, from the counter on its
    storage transport (shared/storage/transport.py)."""

    def take(self) -> tuple[int, int, dict[str, int]]:
        from shared.storage.transport import storage_requests

        counts, size = storage_requests().take()
        return sum(counts.values()), size, dict(counts)


@functools.cache
def room_pull_function() -> Callable[[dict[str, Any]], None]:
    """The registered `room_pull` queue function, called as the host calls it (a QueueMessage per message).
    (`FunctionApp.get_functions` registers the blueprints: once per process.)"""
    from azure.functions.queue import QueueMessage

    import function_app

    function = next(f for f in function_app.app.get_functions() if f.get_function_name() == "room_pull")
    user_function = function.get_user_function()
    counter = iter(range(10**9))

    def handle(body: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        user_function(QueueMessage(id=f"bench-{next(counter)}", body=json.dumps(body).encode(), dequeue_count=1,
                                   insertion_time=now, expiration_time=now + timedelta(days=7)))

    return handle


def run_cycle(stack: BenchStack, meter: StorageMeter, rooms: int, workers: int, *, timeout: float = 3600.0) -> Cycle:
    """The timer (`enqueue_all`) and `workers` queue workers running `room_pull` until every room is pulled."""

    services = stack.services()
    graph = stack.sim.graph
    handler = room_pull_function()
    graph.reset_counters()
    POOL_FULL.take()
    with QueueWorker(stack.connection_string, PULL_QUEUE, handler, threads=workers, keep_deliveries=False,
                     refill_at=host_queues().new_batch_threshold, lease_seconds=LEASE) as worker:
        gc.collect()
        meter.take()
        cpu0 = cpu_now(stack)
        t0 = time.perf_counter()
        queued = services.pull.enqueue_all()
        enqueued = time.perf_counter() - t0
        deadline = t0 + timeout
        while worker.handled - worker.failed < queued:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"cycle timed out: {worker.handled - worker.failed} of {queued} rooms pulled")
            if worker.failed > max(10, queued // 10):
                raise RuntimeError(f"{worker.failed} room-pull messages failed (see the warnings above)")
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        cpu1 = cpu_now(stack)
        storage_requests, storage_bytes, storage_ops = meter.take()
        failed = worker.failed
    if queued != rooms:
        raise RuntimeError(f"the timer queued {queued} rooms, expected {rooms}")
    counts: dict[str, int] = graph.counter_snapshot().get("counts", {})
    return Cycle(rooms=rooms, wall=wall, enqueue=enqueued, graph_requests=counts.get("graph.requests", 0),
                 delta_initial=counts.get("graph.delta.initial", 0),
                 delta_incremental=counts.get("graph.delta.incremental", 0),
                 delta_pages=counts.get("graph.delta", 0),
                 statuses={k[len("graph.status."):]: v for k, v in counts.items() if k.startswith("graph.status.")},
                 throttled=counts.get("graph.throttled", 0), failed=failed, storage_requests=storage_requests,
                 storage_bytes=storage_bytes, storage_ops=storage_ops,
                 cpu={k: cpu1.get(k, 0.0) - v for k, v in cpu0.items()})


@dataclass
class Audit:
    rooms: int = 0
    entries: int = 0
    expected: int = 0
    echoes: int = 0  # own events published as external (created / updated / removed)
    missed: int = 0  # changes made in Outlook with no matching entry
    unexpected: int = 0  # entries that match nothing changed (duplicates, spurious)
    types: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    feeds: int = 0  # feeds read through the HTTP API
    seconds: float = 0.0  # reading them took


def feed_cursors(fleet: Fleet) -> dict[str, int]:
    """Each room's last published sequence number (the cursor of a host that is up to date): one query over the
    rooms' state rows."""
    rows = fleet.stack.services().repos.pull_states.query(
        "RowKey eq @rk and system eq @system", parameters={"rk": "state", "system": fleet.system}, page_size=1000)
    return {row.subject_id: row.seq for row in rows}


API_SAMPLE = 25  # rooms whose feed the audit also reads through the HTTP API


def published(fleet: Fleet, since: datetime, before: dict[str, int], after: dict[str, int]) -> dict[str, list[Any]]:
    """Each room's feed entries after `before` and up to `after` (its cursors), as the API answers them
    (`feed_json`), from the feed pages written since `since`: one query for every room. Read a room at a time, each
    read costs Azurite a scan of its whole table (half a minute for 500 rooms); on Azure it reads one partition."""
    from shared.pull import feed_json

    repos = fleet.stack.services().repos
    rows = repos.feed.query("RowKey gt @lo and RowKey lt @hi and system eq @system and published_at ge @since",
                            parameters={"lo": "feed|", "hi": "feed}", "system": fleet.system, "since": since},
                            page_size=1000)
    out: dict[str, list[Any]] = {}
    for page in rows:
        low, high = before.get(page.subject_id, 0), after.get(page.subject_id, 0)
        out.setdefault(page.subject_id, []).extend(feed_json(e) for e in page.unpack() if low < e.seq <= high)
    for entries in out.values():
        entries.sort(key=lambda e: e["seq"])
    return out


def audit(fleet: Fleet, rooms: list[Room], expected: dict[str, Expected], before: dict[str, int],
          threads: int, since: datetime) -> Audit:
    """The rooms' feeds after the cursors `before` against `expected`: read from the feed pages written since
    `since` (`published`), and for API_SAMPLE rooms (those with changes to the product's own events first) also
    through the HTTP API as the host reads it, which must answer the same entries. A room whose sequence number did
    not move and where nothing was expected published nothing and expected nothing."""
    after = feed_cursors(fleet)
    result = Audit(rooms=len(rooms))
    lock = threading.Lock()
    began = time.perf_counter()
    feeds = published(fleet, since, before, after)
    rooms = [r for r in rooms if after.get(r.subject, 0) != before.get(r.subject, 0) or r.own
             or expected.get(r.subject, Expected()).external or expected.get(r.subject, Expected()).own]
    sample = sorted(rooms, key=lambda r: (not expected.get(r.subject, Expected()).own, r.index))[:API_SAMPLE]

    def through_api(room: Room) -> None:
        api = fleet.api()
        changes: list[dict[str, Any]] = []
        cursor = str(before.get(room.subject, 0))
        while True:
            response = api.get(f"/api/systems/{fleet.system}/connections/space/{room.subject}/external-events"
                               f"?cursor={cursor}&limit=500")
            if response.status_code != 200:
                raise RuntimeError(f"feed of {room.subject}: {response.status_code} {response.text}")
            body = response.json()
            changes.extend(body["changes"])
            cursor = body["next_cursor"]
            if not body["more"]:
                break
        if changes != feeds.get(room.subject, []):
            with lock:
                result.unexpected += 1
                result.examples.append(f"the API's feed of {room.subject} differs from its feed pages")

    run_all(through_api, sample, threads)
    for room in rooms:
        changes = feeds.get(room.subject, [])
        exp = expected.get(room.subject, Expected())
        own_ids = set(room.own.values()) | set(exp.own) | exp.own_writes
        wanted = set(exp.external.items()) | set(exp.own.items())
        seen: set[tuple[str, str]] = set()
        notes: list[str] = []
        echoes = unexpected = 0
        for change in changes:
            key = (change["event_id"], change["type"])
            if change["type"] in EXTERNAL_TYPES and change["event_id"] in own_ids:
                echoes += 1
                notes.append(f"echo: {room.subject} {change['type']} {change['event_id'][:20]}")
            elif key in wanted and key not in seen:
                seen.add(key)
            else:
                unexpected += 1
                notes.append(f"unexpected: {room.subject} {change['type']} {change['event_id'][:20]}")
        missed = wanted - seen
        notes += [f"missed: {room.subject} {kind} {event_id[:20]}" for event_id, kind in sorted(missed)]
        result.entries += len(changes)
        result.expected += len(wanted)
        result.echoes += echoes
        result.unexpected += unexpected
        result.missed += len(missed)
        result.types.update(c["type"] for c in changes)
        result.examples.extend(notes[: max(0, 8 - len(result.examples))])
    result.feeds, result.seconds = len(sample), time.perf_counter() - began
    return result


# --- helpers ---------------------------------------------------------------------------------------------------


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def rss() -> str:
    """This process's resident memory now and its high-water mark (Linux /proc), for the report."""
    try:
        text = Path("/proc/self/status").read_text()
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        now, high = (int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))
    except (OSError, KeyError, ValueError):
        return "?"
    return f"{mb(now)} (high-water mark {mb(high)})"


def where_time_went(report: Report, cycle: Cycle, rooms: int, instance: Instance | None = None) -> None:
    cpu = cycle.cpu
    who = "the instance" if instance else "this process"
    # Per-room targets of the measured cycle hold for a fleet: a handful of rooms carries the sweep's reads of the
    # system's rows and the token cache alone.
    fleet = instance is not None and rooms >= FLEET
    report.figure(f"  CPU of {who} (app, workers, SDKs)", cpu.get("app", 0) / rooms * 1000, ".1f", "ms",
                  "instance_cpu_ms_per_room" if fleet else None, f"a room; {cpu.get('app', 0):.1f} s in all")
    if "function" in cpu:
        report.line("    of which the room_pull function", f"{cpu['function'] / rooms * 1000:.1f} ms",
                    f"a room; the sweep {cpu['sweep'] / rooms * 1000:.1f} ms a room; the rest is the queue worker's "
                    "receives and deletes (the Functions host's)")
    report.line("  CPU of Azurite (tables, queues)", f"{cpu.get('azurite', 0) / rooms * 1000:.1f} ms", "a room")
    if "simulator" in cpu:
        report.line("  CPU of the simulator", f"{cpu['simulator'] / rooms * 1000:.1f} ms", "a room")
    report.figure("  table and queue requests of the app", cycle.storage_requests / rooms, ".1f", "",
                  "storage_requests_per_room" if fleet else None,
                  f"a room; {cycle.storage_bytes / rooms / 1000:.0f} kB of answers a room")
    storage_breakdown(report, cycle.storage_ops, rooms, "a room")
    if cycle.failed or cycle.throttled:
        report.line("  messages that failed (retried later)", str(cycle.failed), f"Graph 429s {cycle.throttled}")
    if instance is None:
        report.line("  resident memory of this process after it", rss())


@dataclass
class Instance:
    """A cycle run by a newly started instance, and that instance's memory."""

    cycle: Cycle
    idle_rss: int  # resident once its services were built
    peak_rss: int  # high-water mark at the end of the cycle


def instance_cycle(stack: BenchStack, rooms: int, workers: int) -> Instance:
    """One cycle in a newly started instance (bench/pull_worker.py): its own figures (wall, CPU, table and queue
    requests, memory), with the Graph requests the simulator counted and the CPU Azurite and the simulator used."""
    graph = stack.sim.graph
    graph.reset_counters()
    cpu0 = cpu_now(stack)
    done = subprocess.run([sys.executable, "-m", "bench.pull_worker", "--rooms", str(rooms), "--workers",
                           str(workers)], cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                          timeout=3600, check=False)
    cpu1 = cpu_now(stack)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the instance's cycle failed ({done.returncode}): {done.stdout[-2000:]}"
                           f"{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    counts: dict[str, int] = graph.counter_snapshot().get("counts", {})
    cpu = {k: cpu1.get(k, 0.0) - v for k, v in cpu0.items()}
    cpu["app"] = result["cpu"]
    cpu["function"] = result.get("function_cpu", 0.0)
    cpu["sweep"] = result.get("enqueue_cpu", 0.0)
    cycle = Cycle(rooms=rooms, wall=result["wall"], enqueue=result["enqueue"],
                  graph_requests=counts.get("graph.requests", 0), delta_initial=counts.get("graph.delta.initial", 0),
                  delta_incremental=counts.get("graph.delta.incremental", 0), delta_pages=counts.get("graph.delta", 0),
                  statuses={k[len("graph.status."):]: v for k, v in counts.items() if k.startswith("graph.status.")},
                  throttled=counts.get("graph.throttled", 0), failed=result["failed"],
                  storage_requests=result["storage_requests"], storage_bytes=result["storage_bytes"],
                  storage_ops=result["storage_ops"], cpu=cpu)
    return Instance(cycle=cycle, idle_rss=result["idle_rss"], peak_rss=result["peak_rss"])


def report_instance(report: Report, rooms: int, instance: Instance) -> None:
    cycle = instance.cycle
    report.line(f"{rooms} rooms", mb(instance.peak_rss),
                f"peak; idle instance {mb(instance.idle_rss)}, grown by {mb(instance.peak_rss - instance.idle_rss)}"
                f"; cycle {cycle.wall:.1f} s, {cycle.graph_requests} Graph requests, {cycle.failed} messages failed "
                f"and retried, instance CPU {cycle.cpu.get('app', 0):.1f} s, Azurite CPU "
                f"{cycle.cpu.get('azurite', 0):.1f} s")


# --- main ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/pull", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=500, help="rooms of the measured cycle (default 500)")
    parser.add_argument("--events", type=int, default=300, help="Outlook bookings per room (default 300)")
    parser.add_argument("--large-rooms", type=int, default=None,
                        help=f"rooms of the second memory measurement (default {DEFAULT_LARGE_ROOMS}, with --full "
                             f"{FULL_LARGE_ROOMS}; 0 leaves it out)")
    parser.add_argument("--full", action="store_true",
                        help=f"the second memory measurement at {FULL_LARGE_ROOMS} rooms (about 12 minutes on 2 cores)")
    parser.add_argument("--large-events", type=int, default=10,
                        help="Outlook bookings in each room added for it (default 10)")
    parser.add_argument("--change-percent", type=float, default=1.0, help="events changed between cycles (1)")
    parser.add_argument("--latency-ms", type=float, default=25.0, help="Graph latency per request, L (default 25)")
    parser.add_argument("--workers", type=int, default=None,
                        help="queue functions at once (default: host.json batchSize)")
    parser.add_argument("--connect-threads", type=int, default=8, help="sign-ins and API calls at once (8)")
    parser.add_argument("--signed-in", type=int, default=16,
                        help="rooms that sign in through the OAuth flow (default 16); the others' connections are "
                             "cloned from the first's")
    parser.add_argument("--simulator", choices=("process", "thread"), default="process",
                        help="process (default): the simulator in its own process, so neither its CPU nor its "
                             "memory counts as the app's; thread: served from this process as the tests do")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--verbose", action="store_true", help="the app's INFO logs")
    args = parser.parse_args(argv)
    if args.large_rooms is None:
        args.large_rooms = FULL_LARGE_ROOMS if args.full else DEFAULT_LARGE_ROOMS
    if (args.rooms < 1 or args.events < 1 or args.latency_ms < 0 or args.large_rooms < 0 or args.large_events < 0
            or args.signed_in < 1):
        parser.error("rooms, events and --signed-in must be positive, latency not negative")
    if args.large_rooms and args.large_rooms <= args.rooms:
        parser.error("--large-rooms must be more than --rooms (or 0)")
    return run_bench(lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    report = Report(TARGETS, width=46)
    workers = args.workers or host_queues().batch_size
    latency = args.latency_ms / 1000.0
    per_room = args.events * args.change_percent / 100
    print(f"Pull benchmark: {args.rooms} rooms x {args.events} Outlook bookings (+ {len(OWN_OCCURRENCES)} of the "
          f"product's own), {args.change_percent:g}% changed between cycles ({per_room:g} a room), Graph latency "
          f"{args.latency_ms:g} ms, {workers} queue workers (host.json batchSize), simulator in a {args.simulator}",
          flush=True)
    with BenchStack(simulator=args.simulator) as stack:
        meter = StorageMeter()
        fleet = Fleet(stack)
        graph = stack.sim.graph
        graph.set_latency(0, 0)  # set-up at full speed; the latency is on for every cycle

        # --- set-up --------------------------------------------------------------------------------------------
        t = time.perf_counter()
        rooms = fleet.add_rooms(args.rooms)
        populating = threading.Thread(target=fleet.populate, args=(rooms, args.events), name="populate")
        populating.start()  # the simulator's process fills the calendars while the rooms sign in
        signed_in = rooms[:min(args.signed_in, args.rooms)]
        fleet.connect(signed_in, args.connect_threads)
        fleet.clone_connections(signed_in[0], rooms[len(signed_in):])
        connect_time = time.perf_counter() - t
        populating.join()
        fleet.export_own(rooms, args.connect_threads)
        print(f"\nSet-up: {len(signed_in)} rooms signed in through OAuth and configured (room mailbox, two-way), "
              f"{args.rooms - len(signed_in)} connections cloned from {rooms[0].subject}'s: {connect_time:.1f} s; "
              f"calendars filled and own events exported: {time.perf_counter() - t:.1f} s", flush=True)
        graph.set_latency(fixed_ms=args.latency_ms, jitter_ms=0)
        graph.set_throttling(enabled=True)

        # --- baseline ------------------------------------------------------------------------------------------
        base = run_cycle(stack, meter, args.rooms, workers)
        print(f"\nBaseline cycle: {args.rooms} rooms read in full (reported apart, no target)", flush=True)
        report.line("wall time", f"{base.wall:.2f} s", f"{base.wall / args.rooms * 1000:.0f} ms a room")
        report.line("Graph requests", str(base.graph_requests),
                    f"{base.delta_initial} initial delta rounds, {base.delta_pages} delta pages of 100")
        where_time_went(report, base, args.rooms)

        # --- the measured cycle, in a newly started instance ----------------------------------------------------
        # The instance is its own process: its peak resident memory holds only what the app keeps.
        cursors = feed_cursors(fleet)
        t, since = time.perf_counter(), datetime.now(UTC) - timedelta(seconds=5)
        expected = fleet.change(rooms, args.change_percent, 0, args.connect_threads)
        changing = time.perf_counter() - t
        small = instance_cycle(stack, args.rooms, workers)
        cycle = small.cycle
        checked = audit(fleet, rooms, expected, cursors, args.connect_threads, since)
        bound = args.rooms * latency / workers
        requests_per_room = cycle.graph_requests / args.rooms
        ratio = cycle.wall / bound if bound else float("inf")
        print(f"\nIncremental cycle: {args.rooms} rooms, {checked.expected} changes made in Outlook, pulled by a "
              "newly started instance (a process of its own)", flush=True)
        report.figure("Graph requests", cycle.graph_requests, "d", "", None,
                      f"{cycle.delta_incremental} incremental delta rounds, {cycle.delta_initial} initial; "
                      f"statuses {dict(sorted(cycle.statuses.items()))}")
        report.figure("Graph requests per room", requests_per_room, ".3f", "", "requests_per_room")
        report.figure("wall time (timer fires to last room pulled)", cycle.wall, ".2f", "s", None,
                      f"enqueue_all {cycle.enqueue:.2f} s")
        report.line("bound", f"{bound:.2f} s",
                    f"rooms x L / workers = {args.rooms} x {args.latency_ms:g} ms / {workers} (one delta request a "
                    "room)")
        report.figure("ratio to bound", ratio, ".2f", "x", None, "no target set")
        report.line("  per room (wall x workers / rooms)", f"{cycle.wall * workers / args.rooms * 1000:.0f} ms",
                    f"of which Graph latency {args.latency_ms:g} ms")
        where_time_went(report, cycle, args.rooms, small)
        report.line("feed entries published", str(checked.entries), str(dict(sorted(checked.types.items()))))
        report.line("  (benchmark's own work)", "", f"changes made in {changing:.1f} s; feeds read and checked in "
                    f"{checked.seconds:.1f} s ({checked.feeds} of them also through the API, which answered the "
                    "same)" + ("" if not checked.unexpected else ", or see below"))
        report.figure("echoes (own events published as external)", checked.echoes, "d", "", "echoes")
        report.figure("missed (Outlook changes not published)", checked.missed, "d", "", "missed",
                      f"of {checked.expected}")
        if checked.unexpected:
            report.line("unexpected entries (twice, or spurious)", str(checked.unexpected))
        for note in checked.examples:
            report.line("", "", note)

        # --- memory --------------------------------------------------------------------------------------------
        print("\nMemory: peak resident memory of a newly started instance (its own process) running one incremental "
              "cycle", flush=True)
        report_instance(report, args.rooms, small)
        later: list[Audit] = []
        memory_ratio = growth_ratio = float("nan")
        if args.large_rooms:
            t = time.perf_counter()
            added = fleet.add_rooms(args.large_rooms - args.rooms, prefix="annex")
            graph.set_latency(0, 0)
            populating = threading.Thread(target=fleet.populate, args=(added, args.large_events), name="populate")
            populating.start()
            fleet.clone_connections(rooms[0], added)
            populating.join()
            setup = time.perf_counter() - t
            graph.set_latency(fixed_ms=args.latency_ms, jitter_ms=0)
            grow = run_cycle(stack, meter, args.large_rooms, workers)  # the added rooms' baseline
            print(f"  ({len(added)} rooms added and read: {time.perf_counter() - t:.1f} s)", flush=True)
            cursors = feed_cursors(fleet)
            since = datetime.now(UTC) - timedelta(seconds=5)
            expected = fleet.change(fleet.rooms, args.change_percent, 1, args.connect_threads)
            large = instance_cycle(stack, args.large_rooms, workers)
            later.append(audit(fleet, fleet.rooms, expected, cursors, args.connect_threads, since))
            report_instance(report, args.large_rooms, large)
            memory_ratio = large.peak_rss / small.peak_rss
            growth_ratio = (large.peak_rss - large.idle_rss) / max(1, small.peak_rss - small.idle_rss)
            report.figure(f"ratio {args.large_rooms} vs {args.rooms} rooms (peak)", memory_ratio, ".2f", "",
                          "memory_ratio_5000_vs_500")
            report.line(f"ratio {args.large_rooms} vs {args.rooms} rooms (growth)", f"{growth_ratio:.2f}",
                        "what each cycle added to its idle instance; no target set")
            report.line("", "", f"the {len(added)} rooms added hold {args.large_events} Outlook bookings each "
                        f"(not {args.events}) and none of the product's; {args.change_percent:g}% of them changed")
            report.line("", "", f"their connections were cloned in bulk from {rooms[0].subject}'s (which signed "
                        f"in); set-up {setup:.1f} s, their baseline cycle {grow.wall:.1f} s "
                        f"({grow.wall / args.large_rooms * 1000:.0f} ms a room)")
        for checked_later in later:
            report.line("large memory cycle: echoes, missed", f"{checked_later.echoes}, {checked_later.missed}",
                        f"{checked_later.entries} entries, {checked_later.expected} changes made"
                        + (f", {checked_later.unexpected} unexpected" if checked_later.unexpected else ""))
            for note in checked_later.examples:
                report.line("", "", note)
        echoes = checked.echoes + sum(a.echoes for a in later)
        missed = checked.missed + sum(a.missed for a in later)
        if (echoes, missed) != (checked.echoes, checked.missed):
            report.figure("echoes over all incremental cycles", echoes, "d", "", "echoes")
            report.figure("missed over all incremental cycles", missed, "d", "", "missed")

        print(f"\n(total benchmark time {time.perf_counter() - began:.1f} s)\n", flush=True)
        print(f"requests_per_room: {requests_per_room:.3f}")
        print(f"storage_requests_per_room: {cycle.storage_requests / args.rooms:.2f}")
        print(f"instance_cpu_ms_per_room: {cycle.cpu.get('app', 0) / args.rooms * 1000:.1f}")
        print(f"ratio_to_bound: {ratio:.2f}")
        print(f"memory_ratio_5000_vs_500: {memory_ratio:.2f}")
        print(f"memory_growth_ratio_5000_vs_500: {growth_ratio:.2f}")
        print(f"echoes: {echoes}")
        print(f"missed: {missed}", flush=True)
    if args.check and report.missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
