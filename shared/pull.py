"""Two-way sync: what changed in each room calendar, published as a feed the host reads by cursor.

Each pull reads only changes: `calendarView/delta` over a window from a little before today to a horizon, its
delta link kept per room. The window moves forward (a new baseline) a few days at a time, at a time that
differs per room, and after a 410; a baseline is diffed against what is stored, so nothing is published twice
and removals are not missed. Bookings made in Outlook (events without our sync records) are stored and
published as created, updated or removed; the product's own events never come back as external events, but a
change or deletion of one of them made in Outlook is published for the host to act on.

Two pulls of one room publish each change once: the state row's ETag, as the pull read it, is the condition of
every transaction it commits (the state row is in each). A pull that loses to another's commit commits nothing
and queues the room again; a pull killed midway holds nothing, so its redelivered message pulls the room at once.

What a pull costs in table and queue requests (bench/pull prints them): the timer's sweep reads each system's
two-way space connections, integration and locations once and sends each room's message carrying its connection
and those rows' ETags, so the pull reads neither again; then the state row (read once, no lease write), the
delta, and for a few changed events one filtered query of their sync records (with the host bookings their times
overlap) and one of their stored rows; then one transaction. A room where nothing changed writes nothing (its
state is rewritten at most every STATE_REFRESH, keeping its delta link recent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from shared import validation
from shared.clock import Clock, iso, utcnow
from shared.connections import ConnectionAccess, MailboxNotInScope
from shared.errors import ConcurrencyConflict, ValidationFailed
from shared.graph.client import GraphClient, GraphError, TokenSource
from shared.integrations import IntegrationService
from shared.models import (
    Connection,
    ExternalEvent,
    FeedEntry,
    Integration,
    LocationSettings,
    OwnObservation,
    PullState,
    PullTarget,
    SyncRecord,
    connection_partition,
)
from shared.storage.queues import QueueSender
from shared.storage.repositories import Feed, Repositories
from shared.storage.tables import MAX_TRANSACTION
from shared.timezones import event_times

log = logging.getLogger(__name__)

PULL_QUEUE = "room-pull"
PAGE_SIZE = 100
REPULL_AFTER = 30  # seconds: a pull that lost its commit to another pull queues the room again for then
CARRIED_FOR = timedelta(minutes=2)  # how long a sweep's copy of a connection stands in for reading it
STATE_REFRESH = timedelta(hours=1)  # an unchanged room's state (its newer delta link) is still stored this often
REBASELINE_AFTER = timedelta(days=7)  # how far the window start may fall behind before it moves
BEFORE_TODAY = timedelta(days=1)
MAX_FEED_PAGE = 500
FAN_OUT_THREADS = 8  # queue sends in flight while the timer fans pulls out
FAN_OUT_WINDOW = 200
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # Azure Storage queues hide a message for at most 7 days
# Up to this many events in a delta, a pull reads only their rows (filtered queries of up to 15 comparisons, Table
# Storage's limit); beyond it, the room's rows whole.
TARGETED_MAX_EVENTS = 42
CACHED_SYSTEMS = 1000  # integrations (and locations) a process keeps by ETag


class PullBusy(ConcurrencyConflict):
    code = "pull_in_progress"

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Change:
    """One thing to publish, with the stored row that goes with it (committed in the same transaction)."""

    change: str
    event_id: str
    data: dict[str, Any]
    upsert: ExternalEvent | OwnObservation | None = None
    delete: ExternalEvent | None = None


class HostBookings:
    """The host's bookings of the room, for conflict flags: all of them when the pull read the room whole,
    otherwise those overlapping the delta's events (read with their records in one query)."""

    def __init__(self, known: list[SyncRecord]) -> None:
        self._known = known

    def overlap(self, start: datetime, end: datetime) -> bool:
        return any(r.event_id and r.start_utc and r.end_utc and r.start_utc < end and start < r.end_utc
                   for r in self._known)


@dataclass
class Carried:
    """What the sweep read once for all rooms of a system and sent in each room's message, so the pull need not
    read it again: the connection (as of `at`), and the ETags of the system's integration and of the room's
    location settings ("" when there were none)."""

    at: datetime
    connection: Connection
    integration: str | None
    location: str | None


class PullService:
    def __init__(self, repos: Repositories, access: ConnectionAccess, integrations: IntegrationService,
                 graph: GraphClient, queues: QueueSender, *, horizon_days: int = 180, clock: Clock = utcnow,
                 on_published: Any = None, sweep_filter: Any = None) -> None:
        self._repos = repos
        self._access = access
        self._integrations = integrations
        self._graph = graph
        self._queues = queues
        self._horizon = timedelta(days=horizon_days)
        self._clock = clock
        self._on_published = on_published  # webhook hook: (connection, first_seq, last_seq, integration)
        # () -> (PullTarget -> bool): which rooms this sweep pulls (rooms with change notifications less often)
        self._sweep_filter = sweep_filter
        self._integration_cache: dict[str, Integration] = {}  # by system; used only when its ETag is the sweep's
        self._location_cache: dict[tuple[str, str], LocationSettings] = {}

    # --- which rooms -------------------------------------------------------------------------------------------

    def track(self, connection: Connection) -> None:
        """Keep the pull index in step with a connection's two-way switch."""
        target = PullTarget(system=connection.system, subject_id=connection.subject_id)
        if connection.kind == "space" and connection.two_way:
            self._repos.pull_targets.upsert(target)
        else:
            self._repos.pull_targets.delete(target.partition_key(), target.row_key())

    def enqueue_all(self) -> int:
        """Timer: one queue message per two-way room, so pulls spread over instances. Sent a few at a time:
        one by one, thousands of rooms would take most of a minute before the last room's pull could start."""
        def send(body: dict[str, Any]) -> None:
            self._queues.send(PULL_QUEUE, body)

        count = 0
        window: list[dict[str, Any]] = []  # bounded, so memory does not grow with the number of rooms
        with ThreadPoolExecutor(max_workers=FAN_OUT_THREADS, thread_name_prefix="pull-fan-out") as pool:
            for body in self.sweep_messages():
                window.append(body)
                if len(window) == FAN_OUT_WINDOW:
                    count += len(list(pool.map(send, window)))
                    window = []
            count += len(list(pool.map(send, window)))
        return count

    def sweep_messages(self) -> Iterator[dict[str, Any]]:
        """Each target's message. Per system, the integration, the locations and the space connections are read
        once (the connections a page of up to 1,000 at a time, in the targets' order, so memory stays bounded)
        and carried: the room's pull then reads none of them."""
        now = self._clock()
        system: str | None = None
        rooms: _Rooms | None = None
        integration: Integration | None = None
        locations: dict[str, str] = {}
        due = self._sweep_filter() if self._sweep_filter is not None else None
        for target in self._repos.pull_targets.partition("pull"):
            if due is not None and not due(target):
                continue
            body: dict[str, Any] = {"system": target.system, "id": target.subject_id}
            if target.system != system:
                system = target.system
                integration = self._repos.integrations.find(system)
                self._remember_integration(integration)
                locations = {}
                for location in self._repos.locations.partition(system):
                    locations[location.location] = location.etag or ""
                    self._remember_location(location)
                rooms = _Rooms(self._repos.connections.prefixed(system, "space:"))
            connection = rooms.find(target.subject_id) if rooms is not None else None
            if connection is not None and integration is not None:
                body["carried"] = {"at": iso(now), "connection": self._repos.connections.to_json(connection),
                                   "integration": integration.etag,
                                   "location": locations.get(connection.location, "") if connection.location
                                   else None}
            yield body

    # --- one room ----------------------------------------------------------------------------------------------

    def pull_from_queue(self, system: str, subject_id: str, message: dict[str, Any] | None = None) -> dict[str, Any]:
        """The queue worker. A room whose commit another pull won is queued again REPULL_AFTER later (that pull
        published what it read; what came after it is read then); a throttled one when Graph said."""
        try:
            return self.pull(system, subject_id, carried=self._carried(system, subject_id, message))
        except MailboxNotInScope as refused:  # recorded on the connection and alerted by ConnectionAccess
            return {"outcome": "access_denied", "microsoft_code": refused.microsoft_code}
        except PullBusy:
            self._queues.send(PULL_QUEUE, {"system": system, "id": subject_id}, delay_seconds=REPULL_AFTER)
            return {"outcome": "busy", "requeued_in_seconds": REPULL_AFTER}
        except GraphError as exc:
            if exc.retry_after is None:
                raise
            # Throttled for longer than the client sleeps: the room comes back when Graph said, not earlier
            # (the pull committed nothing).
            delay = min(max(math.ceil(exc.retry_after), 1), MAX_VISIBILITY_SECONDS)
            self._queues.send(PULL_QUEUE, {"system": system, "id": subject_id}, delay_seconds=delay)
            return {"outcome": "throttled", "requeued_in_seconds": delay}

    def pull(self, system: str, subject_id: str, *, carried: Carried | None = None) -> dict[str, Any]:
        if carried is not None:
            connection: Connection | None = carried.connection
            integration = self._integration(system, carried.integration)
        else:
            connection = self._repos.connections.find(system, "space", subject_id)
            integration = None
        if connection is None or not connection.two_way:
            self._repos.pull_targets.delete("pull", f"{system}|{subject_id}")
            return {"outcome": "not_two_way"}
        if integration is None:
            integration = self._integrations.require(system)
            self._remember_integration(integration)
        if not integration.enabled or not connection.syncable:  # an app-mode room refused before is tried again
            return {"outcome": "skipped", "reason": "sync disabled or reauthorization required"}
        state = self._repos.pull_states.get(connection_partition(system, "space", subject_id), "state") or \
            PullState(system=system, subject_id=subject_id)

        def location() -> LocationSettings | None:
            return self._location(connection, carried.location if carried is not None else None)

        changes, advance, quiet = self._access.run(connection,
                                                   lambda token: self._read(token, connection, state, location),
                                                   integration=integration)
        if quiet and not self._worth_storing(state, advance):
            return {"outcome": "pulled", "published": 0, "seq": state.seq}
        published = self._publish(state, changes, advance)
        if published and self._on_published is not None:
            self._on_published(connection, published[0], published[-1], integration)
        return {"outcome": "pulled", "published": len(published), "seq": state.seq}

    def _carried(self, system: str, subject_id: str, message: dict[str, Any] | None) -> Carried | None:
        """The sweep's copy of the room's connection and ETags, when the message has one of this room that is
        recent; None (read them) otherwise, or when it does not read back."""
        raw = (message or {}).get("carried")
        if not isinstance(raw, dict):
            return None
        try:
            at = datetime.fromisoformat(str(raw["at"]))
            connection = self._repos.connections.from_json(raw["connection"])
        except (KeyError, TypeError, ValueError):
            log.warning("room-pull message of %s/%s carries an unreadable connection; reading it", system,
                        subject_id)
            return None
        age = self._clock() - at
        if not timedelta(seconds=-60) <= age <= CARRIED_FOR or connection.system != system \
                or connection.kind != "space" or connection.subject_id != subject_id:
            return None
        integration, location = raw.get("integration"), raw.get("location")
        return Carried(at, connection, integration if isinstance(integration, str) else None,
                       location if isinstance(location, str) else None)

    def _integration(self, system: str, etag: str | None) -> Integration | None:
        """The system's integration as the sweep saw it, from this process's copy when its ETag is that one."""
        cached = self._integration_cache.get(system)
        if etag is not None and cached is not None and cached.etag == etag:
            return cached
        return None

    def _remember_integration(self, integration: Integration | None) -> None:
        if integration is not None and integration.etag:
            self._integration_cache[integration.system] = integration
            while len(self._integration_cache) > CACHED_SYSTEMS:
                self._integration_cache.pop(next(iter(self._integration_cache)))

    def _location(self, connection: Connection, etag: str | None) -> LocationSettings | None:
        """The room's location settings: this process's copy when the sweep saw that ETag, the defaults when the
        sweep saw none saved, else read."""
        if not connection.location:
            return None
        key = (connection.system, connection.location)
        if etag == "":
            return LocationSettings(system=connection.system, location=connection.location)
        cached = self._location_cache.get(key)
        if etag is not None and cached is not None and cached.etag == etag:
            return cached
        found = self._integrations.location(connection.system, connection.location)
        self._remember_location(found)
        return found

    def _remember_location(self, location: LocationSettings) -> None:
        if location.etag:
            self._location_cache[(location.system, location.location)] = location
            while len(self._location_cache) > CACHED_SYSTEMS:
                self._location_cache.pop(next(iter(self._location_cache)))

    @staticmethod
    def _worth_storing(state: PullState, advance: dict[str, Any]) -> bool:
        """The delta was empty: the state is still written when it is new, moves to another window or calendar,
        or has not been written for STATE_REFRESH (its delta link would age; the older one reads the same). A
        delta with items is always stored, even when none is published (our own writes coming back): read from
        the older link, an event seen and then deleted might not come back as removed."""
        last = state.last_pull_at
        return (state.etag is None or "baselined_at" in advance or state.calendar_key != advance["calendar_key"]
                or state.window_start != advance["window_start"] or last is None
                or advance["last_pull_at"] - last >= STATE_REFRESH)

    # --- reading Graph -----------------------------------------------------------------------------------------

    def _read(self, token: TokenSource, connection: Connection, state: PullState,
              location: Callable[[], LocationSettings | None]) -> tuple[list[Change], dict[str, Any], bool]:
        """The changes since the room's delta link (or a new baseline), what the state advances to once they are
        committed, and whether the delta was empty."""
        now = self._clock()
        window_start, window_end = state.window_start, state.window_end
        calendar_key = f"{connection.mailbox.lower()}|{connection.sync_calendar_id or ''}"
        baseline = (state.delta_link is None or state.calendar_key != calendar_key or state.window_start is None
                    or now - state.window_start > REBASELINE_AFTER + BEFORE_TODAY)
        for attempt in range(2):
            if baseline:
                window_start = (now - BEFORE_TODAY).replace(hour=0, minute=0, second=0, microsecond=0)
                window_end = window_start + self._horizon
                url = self._delta_url(connection, window_start, window_end)
            else:
                url = state.delta_link or ""
            try:
                items, delta_link = self._pages(token, url)
                break
            except GraphError as exc:
                if exc.http_status == 410 and attempt == 0:  # the delta token expired: start over
                    log.info("delta token of %s/%s expired (410); new baseline", connection.system,
                             connection.subject_id)
                    baseline = True
                    continue
                raise
        advance: dict[str, Any] = {"delta_link": delta_link, "calendar_key": calendar_key, "last_pull_at": now,
                                   "window_start": window_start, "window_end": window_end}
        if baseline:
            advance["baselined_at"] = now
        return self._changes(connection, state, items, baseline, window_start, location), advance, not items

    def _delta_url(self, connection: Connection, start: datetime, end: datetime) -> str:
        own = not connection.sync_resource or connection.sync_resource == connection.account_username.lower()
        root = "/me" if own else f"/users/{quote(connection.sync_resource, safe='@')}"
        calendar = (f"/calendars/{quote(connection.sync_calendar_id, safe='')}" if connection.sync_calendar_id
                    else "")
        return f"{root}{calendar}/calendarView/delta?startDateTime={_z(start)}&endDateTime={_z(end)}"

    def _pages(self, token: TokenSource, url: str) -> tuple[list[dict[str, Any]], str]:
        headers = {"Prefer": f'odata.maxpagesize={PAGE_SIZE}, outlook.timezone="UTC"'}
        items: list[dict[str, Any]] = []
        while True:
            page = self._graph.request(token, "GET", url, headers=headers)
            items.extend(page.get("value", []))
            if page.get("@odata.nextLink"):
                url = page["@odata.nextLink"]
                continue
            return items, str(page.get("@odata.deltaLink") or "")

    # --- deciding what changed ---------------------------------------------------------------------------------

    def _changes(self, connection: Connection, state: PullState, items: list[dict[str, Any]],
                 baseline: bool, window_start: datetime | None,
                 location: Callable[[], LocationSettings | None]) -> list[Change]:
        if not items and not baseline:
            return []
        partition = state.partition_key()
        ids = sorted({str(item["id"]) for item in items if item.get("id")})
        whole = baseline or len(ids) > TARGETED_MAX_EVENTS
        stored_rows: Any
        observed_rows: Any
        if whole:  # a baseline must see every stored event; a big delta reads the room's rows once
            all_records = list(self._repos.sync_records.partition(partition))
            records = {r.event_id: r for r in all_records if r.event_id}
            first = state.seq == 0  # nothing published yet, so nothing stored: no need to read it
            stored_rows = [] if first else self._repos.external_events.of_room(partition)
            observed_rows = [] if first else self._repos.own_observations.of_room(partition)
        else:  # the usual few changes: one query of their records, then one of their stored rows
            txids = sorted({str(item["transactionId"]) for item in items
                            if item.get("transactionId") and "@removed" not in item})
            spans = [(t.start_utc, t.end_utc) for t in (event_times(item) for item in items
                                                        if "@removed" not in item and not item.get("isCancelled"))
                     if t is not None]
            all_records = self._repos.sync_records.of_delta(partition, ids, txids, spans)
            records = {r.event_id: r for r in all_records if r.event_id}
            keys = [f"own|{i}" if i in records else f"ext|{i}" for i in ids]
            stored_rows, observed_rows = [], []
            for entity in self._repos.pull_states.of_keys(partition, keys):
                if entity["RowKey"].startswith("ext|"):
                    stored_rows.append(self._repos.external_events.decode(entity))
                else:
                    observed_rows.append(self._repos.own_observations.decode(entity))
        # Creates in flight (or cut short by a crash) are ours before their event ID is recorded.
        in_flight = {r.transaction_id for r in all_records if r.transaction_id and not r.event_id}
        stored = {e.event_id: e for e in stored_rows}
        observed = {o.event_id: o.digest for o in observed_rows}
        bookings = HostBookings(list(records.values()) if whole else all_records)
        settings: list[LocationSettings | None] = []

        def populate() -> bool:  # the location's switch, read only when an Outlook booking is first seen
            if not settings:
                settings.append(location())
            return bool(settings[0] and settings[0].populate_creator)

        now = self._clock()
        changes: list[Change] = []
        seen: set[str] = set()
        for item in items:
            event_id = str(item.get("id", ""))
            if "@removed" in item or item.get("isCancelled"):
                changes.extend(self._removed(state, event_id, records, stored, observed))
                continue
            seen.add(event_id)
            if event_id in records:
                changes.extend(self._own(state, records[event_id], item, observed))
                continue
            if item.get("transactionId") and item["transactionId"] in in_flight:
                continue  # our own create whose record does not have the event ID yet
            changes.extend(self._external(connection, item, stored, bookings, populate, now))
        if baseline:  # stored events in the window that the new baseline no longer has were removed
            for event in list(stored.values()):
                if event.event_id in seen:
                    continue
                if window_start and event.end_utc > window_start:
                    changes.extend(self._removed(state, event.event_id, records, stored, observed))
                else:  # fell out of the window into the past: forget it quietly
                    changes.append(Change("", event.event_id, {}, delete=stored.pop(event.event_id)))
        return changes

    def _removed(self, state: PullState, event_id: str, records: dict[str, SyncRecord],
                 stored: dict[str, ExternalEvent], observed: dict[str, str]) -> list[Change]:
        if event_id in records:
            if observed.get(event_id) == "deleted":
                return []
            observed[event_id] = "deleted"
            record = records[event_id]
            return [Change("own_event_deleted", event_id, {"item": record.item_id,
                                                            "occurrence": record.occurrence_key},
                           upsert=self._observation(state, event_id, "deleted"))]
        event = stored.pop(event_id, None)
        if event is None:
            return []  # not ours to report: an event we deleted ourselves, or one outside the window
        return [Change("removed", event_id, {"start": iso(event.start_utc), "end": iso(event.end_utc)},
                       delete=event)]

    def _own(self, state: PullState, record: SyncRecord, item: dict[str, Any],
             observed: dict[str, str]) -> list[Change]:
        times = event_times(item)
        start, end = (times.start_utc, times.end_utc) if times else (None, None)
        subject = str(item.get("subject") or "")
        ours = subject == record.subject and _same(start, record.start_utc) and _same(end, record.end_utc)
        digest = _digest(subject, start, end)
        if ours or observed.get(record.event_id or "") == digest:
            return []  # our own write coming back (an echo), or a change already reported
        observed[record.event_id or ""] = digest
        return [Change("own_event_changed", record.event_id or "", {
            "item": record.item_id, "occurrence": record.occurrence_key, "subject": subject,
            "start": iso(start), "end": iso(end)}, upsert=self._observation(state, record.event_id or "", digest))]

    @staticmethod
    def _observation(state: PullState, event_id: str, digest: str) -> OwnObservation:
        return OwnObservation(system=state.system, subject_id=state.subject_id, event_id=event_id, digest=digest)

    def _external(self, connection: Connection, item: dict[str, Any], stored: dict[str, ExternalEvent],
                  bookings: HostBookings, populate: Callable[[], bool], now: datetime) -> list[Change]:
        event_id = str(item["id"])
        organizer = (item.get("organizer") or {}).get("emailAddress") or {}
        times = event_times(item)
        if times is None:
            log.warning("event %s of %s/%s has no readable start or end; skipped", event_id, connection.system,
                        connection.subject_id)
            return []
        start, end = times.start_utc, times.end_utc
        existing = stored.get(event_id)
        event = ExternalEvent(
            system=connection.system, subject_id=connection.subject_id, event_id=event_id,
            subject=str(item.get("subject") or ""), start_utc=start, end_utc=end,
            is_all_day=times.all_day, time_zone=times.time_zone, zone_assumed=times.zone_assumed,
            organizer_name=str(organizer.get("name") or ""),
            organizer_email=str(organizer.get("address") or ""),
            series_master_id=item.get("seriesMasterId"),
            first_seen_at=existing.first_seen_at if existing else now,
            creator_populated=existing.creator_populated if existing else populate(),
        )
        event.conflict = bookings.overlap(start, end)
        event.fingerprint = _digest(event.subject, start, end, event.is_all_day, event.organizer_email,
                                    event.conflict)
        if existing is not None and existing.fingerprint == event.fingerprint:
            return []  # a replayed delta item: nothing new
        stored[event_id] = event
        return [Change("updated" if existing else "created", event_id, external_json(event), upsert=event)]

    # --- publishing --------------------------------------------------------------------------------------------

    def _publish(self, state: PullState, changes: list[Change], advance: dict[str, Any]) -> list[int]:
        """Commit feed entries (packed in pages), the stored rows they describe and the room's state together, in
        transactions of the room's partition (at most 100 operations each, each conditional on the state's ETag as
        this pull read it, or creating the state row when it had none). A crash between two transactions leaves a
        consistent prefix; the next pull rereads the same delta and carries on. Losing to another pull's commit
        is `PullBusy`, with nothing of this group applied."""
        now = self._clock()
        published: list[int] = []
        groups = _transactions(changes)
        for index, group in enumerate(groups):
            operations: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
            entries: list[FeedEntry] = []
            for change in group:
                if change.change:
                    state.seq += 1
                    entries.append(FeedEntry(system=state.system, subject_id=state.subject_id, seq=state.seq,
                                             change=change.change, event_id=change.event_id, data=change.data,
                                             published_at=now))
                    published.append(state.seq)
                if isinstance(change.upsert, ExternalEvent):
                    operations.append(("upsert", self._repos.external_events.encode(change.upsert), {}))
                elif isinstance(change.upsert, OwnObservation):
                    operations.append(("upsert", self._repos.own_observations.encode(change.upsert), {}))
                if change.delete is not None:
                    operations.append(("delete", {"PartitionKey": change.delete.partition_key(),
                                                  "RowKey": change.delete.row_key()}, {}))
            operations += [("upsert", self._repos.feed.encode(page), {}) for page in Feed.pack(entries)]
            if index == len(groups) - 1:  # the new delta link and window only with the last group
                for name, value in advance.items():
                    setattr(state, name, value)
            if state.etag is None:  # the room's first commit: another pull's first commit makes this one fail
                operations.append(("create", self._repos.pull_states.encode(state), {}))
            else:
                operations.append(("update", self._repos.pull_states.encode(state),
                                   {"mode": UpdateMode.REPLACE, "etag": state.etag,
                                    "match_condition": MatchConditions.IfNotModified}))
            try:
                results = self._repos.pull_states.transaction(operations)
            except ConcurrencyConflict:
                raise PullBusy("another pull of the room committed first") from None
            state.etag = (results[-1] or {}).get("etag")
        return published

    # --- the feed ----------------------------------------------------------------------------------------------

    def feed(self, system: str, subject_id: str, cursor: str | None, limit: str | None) -> dict[str, Any]:
        connection = self._access.require(system, "space", subject_id)
        after = validation.whole_number(cursor, "cursor", 0)
        size = validation.whole_number(limit, "limit", 100)
        if after < 0:
            raise ValidationFailed("cursor", "must be 0 or a cursor this feed returned")
        if not 1 <= size <= MAX_FEED_PAGE:
            raise ValidationFailed("limit", f"must be 1-{MAX_FEED_PAGE}")
        partition = connection_partition(system, "space", subject_id)
        state = self._repos.pull_states.get(partition, "state")
        last = state.seq if state else 0
        entries = [e for e in self._repos.feed.after(partition, after, size) if e.seq <= last]
        return {"system": system, "id": connection.subject_id, "changes": [feed_json(e) for e in entries],
                "next_cursor": str(entries[-1].seq if entries else after), "more": bool(entries) and
                entries[-1].seq < last}

    def backfill_creators(self, system: str, subject_id: str) -> dict[str, Any]:
        """Publish creator name and email for external events first seen before the switch was turned on."""
        connection = self._access.require(system, "space", subject_id)
        location = self._integrations.location(system, connection.location) if connection.location else None
        if location is None or not location.populate_creator:
            raise ValidationFailed("populate_creator", "is off for this space's location: turn it on first")
        partition = connection_partition(system, "space", subject_id)
        state = self._repos.pull_states.get(partition, "state") or PullState(system=system, subject_id=subject_id)
        events = [e for e in self._repos.external_events.of_room(partition) if not e.creator_populated]
        for event in events:
            event.creator_populated = True
        published = self._publish(state, [Change("updated", e.event_id, external_json(e), upsert=e)
                                          for e in events], {})
        if published and self._on_published is not None:
            self._on_published(connection, published[0], published[-1], None)
        return {"updated": len(published)}


def _transactions(changes: list[Change]) -> list[list[Change]]:
    """Changes in groups that fit one transaction: a stored row each, their feed entries' pages (counted by JSON
    size, with room to spare), and the state row."""
    groups: list[list[Change]] = [[]]
    chars = 0
    for change in changes:
        size = len(json.dumps(change.data)) + len(change.event_id) + 40
        pages = (chars + size) // (Feed.PAGE_CHARS // 2) + 1
        if groups[-1] and len(groups[-1]) + 1 + pages + 1 > MAX_TRANSACTION:
            groups.append([])
            chars = 0
        groups[-1].append(change)
        chars += size
    return groups


def external_json(event: ExternalEvent) -> dict[str, Any]:
    data: dict[str, Any] = {"subject": event.subject, "start": iso(event.start_utc), "end": iso(event.end_utc),
                            "is_all_day": event.is_all_day, "conflict": event.conflict}
    if event.time_zone:
        data["time_zone"] = event.time_zone
    if event.is_all_day:  # the dates as Outlook shows them in the event's zone; end exclusive, as Graph's
        zone = ZoneInfo(event.time_zone or "UTC")
        data["start_date"] = event.start_utc.astimezone(zone).date().isoformat()
        data["end_date"] = event.end_utc.astimezone(zone).date().isoformat()
        if event.zone_assumed:
            data["time_zone_assumed"] = "UTC"  # Graph named a zone no table knows: dates placed in UTC
    if event.series_master_id:
        data["series_master_id"] = event.series_master_id
    if event.creator_populated:
        data["creator"] = {"name": event.organizer_name, "email": event.organizer_email}
    return data


def feed_json(entry: FeedEntry) -> dict[str, Any]:
    return {"id": f"{entry.system}:{entry.subject_id}:{entry.seq}", "seq": entry.seq, "type": entry.change,
            "event_id": entry.event_id, "event": entry.data, "published_at": iso(entry.published_at)}


def _z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _same(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and abs((a - b).total_seconds()) < 1


def _digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]



class _Rooms:
    """A system's space connections in row-key order, looked up in that order (a merge with the pull targets)."""

    def __init__(self, connections: Iterator[Connection]) -> None:
        self._rows = connections
        self._next: Connection | None = next(self._rows, None)

    def find(self, subject_id: str) -> Connection | None:
        while self._next is not None and self._next.subject_id < subject_id:
            self._next = next(self._rows, None)
        return self._next if self._next is not None and self._next.subject_id == subject_id else None
