"""Mailboxes, calendars and events, with a per-calendar change log that makes delta cheap.

Events are immutable records replaced on every write (copy-on-write), so the change log can keep a reference to
the version an event had before each write for free. A delta token is then just (calendar, window, sequence
number): answering it reads the log entries after that number, so a room with 300 events and one change costs one
log entry, not 300 events. One lock guards everything; every operation under it is a few dictionary steps.
"""

from __future__ import annotations

import base64
import bisect
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as evolve
from datetime import date, datetime, timedelta
from typing import Any

from simulator.graph.recurrence import Recurrence
from simulator.graph.timezones import zone


def new_item_id() -> str:
    """Outlook-looking IDs: base64 with '-', '_' and '=' in them, so clients learn to URL-encode IDs."""
    return "AAMkA" + base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()


def new_immutable_id() -> str:
    """An item's immutable ID (the store's key for it): a different shape from the default ID, so a client that
    mixes the two formats is caught."""
    return "AAkALg" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()


def new_change_key() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()


def occurrence_id(master_id: str, day: date) -> str:
    """Stable per (series, original date): the same occurrence keeps its ID across reads, views and deltas."""
    return "AAMkO" + base64.urlsafe_b64encode(f"{master_id}|{day:%Y%m%d}".encode()).decode()


def parse_occurrence_id(item_id: str) -> tuple[str, date] | None:
    if not item_id.startswith("AAMkO"):
        return None
    try:
        master, _, day = base64.urlsafe_b64decode(item_id[5:].encode()).decode().rpartition("|")
        return master, date(int(day[:4]), int(day[4:6]), int(day[6:8]))
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class Event:
    """One stored event: a single instance or a series master (with its exceptions and cancellations).

    `id` is the immutable ID, the store's key, kept for the event's life in its mailbox; `rest_id` is the default
    ID, which changes whenever the event moves to another calendar or folder. Which of the two a client sees and
    may send is decided per request by `Prefer: IdType="ImmutableId"`
    (https://learn.microsoft.com/graph/outlook-immutable-id)."""

    id: str
    mailbox_id: str
    calendar_id: str
    subject: str
    body: dict[str, str]
    start: datetime  # aware, UTC
    end: datetime
    start_zone: str
    end_zone: str
    is_all_day: bool
    show_as: str
    location: dict[str, Any]
    categories: tuple[str, ...]
    attendees: tuple[dict[str, Any], ...]
    organizer: dict[str, Any]
    importance: str
    sensitivity: str
    is_reminder_on: bool
    reminder_minutes: int
    recurrence: Recurrence | None
    transaction_id: str | None
    extended: tuple[tuple[str, str], ...]  # (property id as given, value)
    ical_uid: str
    change_key: str
    created: datetime
    modified: datetime
    # Series only: per original date, the fields an exception overrides (start/end included), and deleted dates.
    exceptions: dict[date, dict[str, Any]] = field(default_factory=dict)
    cancelled: frozenset[date] = frozenset()
    rest_id: str = field(default_factory=new_item_id)


def shown_id(inst_id: str, event: Event, original: date | None, immutable: bool) -> str:
    """An instance's ID in the format the request asked for (occurrence IDs embed their master's)."""
    if immutable:
        return inst_id
    return event.rest_id if original is None else occurrence_id(event.rest_id, original)


@dataclass(frozen=True)
class Instance:
    """What calendarView, delta and getSchedule see: a single event, or one occurrence of a series."""

    event: Event
    id: str
    start: datetime
    end: datetime
    original: date | None = None  # the occurrence's original date, None for a single instance
    overrides: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        if self.original is None:
            return "singleInstance"
        return "exception" if self.overrides else "occurrence"


def instances(event: Event, start: datetime, end: datetime) -> Iterator[Instance]:
    """The instances of `event` that overlap [start, end) (not necessarily in time order)."""
    if event.recurrence is None:
        if _overlaps(event.start, event.end, start, end):
            yield Instance(event, event.id, event.start, event.end)
        return
    scanned: set[date] = set()
    for day, begin, finish in _natural(event, start - timedelta(days=1) - (event.end - event.start)):
        if begin >= end:
            break
        if day in event.exceptions:
            scanned.add(day)
        inst = _occurrence(event, day, begin, finish)
        if _overlaps(inst.start, inst.end, start, end):
            yield inst
    # An exception can be moved into the window from a date the scan above did not reach.
    for day, overrides in event.exceptions.items():
        if day not in scanned and day not in event.cancelled and _overlaps(overrides["start"], overrides["end"],
                                                                           start, end):
            yield Instance(event, occurrence_id(event.id, day), overrides["start"], overrides["end"], day, overrides)


def occurrence(event: Event, day: date) -> Instance | None:
    """The occurrence of a series originally on `day`, if the series has one there (and it is not deleted)."""
    for found, begin, finish in _natural(event, datetime.combine(day, datetime.min.time(), event.start.tzinfo)):
        if found == day:
            return _occurrence(event, day, begin, finish)
        if found > day:
            return None
    return None


def _occurrence(event: Event, day: date, begin: datetime, finish: datetime) -> Instance:
    overrides = event.exceptions.get(day)
    if overrides:
        return Instance(event, occurrence_id(event.id, day), overrides["start"], overrides["end"], day, overrides)
    return Instance(event, occurrence_id(event.id, day), begin, finish, day)


def _natural(event: Event, not_before: datetime | None = None) -> Iterator[tuple[date, datetime, datetime]]:
    """(original date, start, end) of every non-deleted occurrence, in order, as the pattern places them."""
    rec = event.recurrence
    assert rec is not None  # nosec B101 - an invariant the caller guarantees
    tz = zone(rec.time_zone or event.start_zone)
    local_start = event.start.astimezone(tz)
    wall = local_start.time()
    duration = event.end - event.start
    days_long = (event.end.astimezone(tz).date() - local_start.date()).days
    skip = not_before.astimezone(tz).date() if not_before else None
    for day in rec.dates(skip):
        if day in event.cancelled:
            continue
        begin = datetime.combine(day, wall).replace(tzinfo=tz).astimezone(event.start.tzinfo)
        if event.is_all_day:  # all-day occurrences run midnight to midnight local, whatever DST does
            finish = datetime.combine(day + timedelta(days=days_long), wall).replace(tzinfo=tz)
            finish = finish.astimezone(event.start.tzinfo)
        else:
            finish = begin + duration
        yield day, begin, finish


def _overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    if a_start == a_end:  # zero-length events sit at a point
        return b_start <= a_start < b_end
    return a_start < b_end and a_end > b_start


@dataclass
class Calendar:
    id: str
    mailbox_id: str
    name: str
    is_default: bool
    change_key: str
    color: str = "auto"
    events: dict[str, Event] = field(default_factory=dict)
    # Change log: parallel lists so bisect can find "entries after sequence n" directly.
    log_seq: list[int] = field(default_factory=list)
    log_entries: list[tuple[str, Event | None]] = field(default_factory=list)  # (event id, version before)
    epoch: int = 0  # bumped to invalidate every delta token of this calendar (410)

    def changes_between(self, after_seq: int, upto_seq: int) -> dict[str, Event | None]:
        """Events written in (after_seq, upto_seq], each with its version as of `after_seq` (None: did not exist)."""
        lo = bisect.bisect_right(self.log_seq, after_seq)
        hi = bisect.bisect_right(self.log_seq, upto_seq)
        before: dict[str, Event | None] = {}
        for event_id, prior in self.log_entries[lo:hi]:
            before.setdefault(event_id, prior)
        return before


@dataclass
class Mailbox:
    user_id: str
    calendars: dict[str, Calendar] = field(default_factory=dict)
    default_id: str = ""
    transactions: dict[str, tuple[str, str]] = field(default_factory=dict)  # transactionId -> (event id, print)


# A write listener: (change, version before or None, version after or None), called under the store's lock, so
# it must only queue work (change notifications do); "moved" has both versions, in different calendars.
ChangeListener = Callable[[str, "Event | None", "Event | None"], None]


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self.calendar_index: dict[str, Calendar] = {}
        self.event_index: dict[str, Calendar] = {}
        self.rest_index: dict[str, str] = {}  # default ID -> immutable ID
        self.seq = 0  # one monotonic sequence for all calendars
        self.listeners: list[ChangeListener] = []

    def _tell(self, change: str, before: Event | None, after: Event | None) -> None:
        for listener in self.listeners:
            listener(change, before, after)

    def mailbox(self, user_id: str) -> Mailbox:
        """The mailbox of a directory user; created on first touch with its default calendar, as Exchange
        provisions one for every mailbox."""
        with self.lock:
            box = self.mailboxes.get(user_id)
            if box is None:
                box = Mailbox(user_id)
                self.mailboxes[user_id] = box
                default = self._new_calendar(box, "Calendar", is_default=True)
                box.default_id = default.id
            return box

    def _new_calendar(self, box: Mailbox, name: str, *, is_default: bool = False) -> Calendar:
        cal = Calendar(new_item_id(), box.user_id, name, is_default, new_change_key())
        box.calendars[cal.id] = cal
        self.calendar_index[cal.id] = cal
        return cal

    def add_calendar(self, user_id: str, name: str) -> Calendar:
        with self.lock:
            return self._new_calendar(self.mailbox(user_id), name)

    def calendar(self, user_id: str, calendar_id: str | None) -> Calendar | None:
        """A calendar of this mailbox; None (not another mailbox's) when the ID belongs elsewhere."""
        with self.lock:
            box = self.mailbox(user_id)
            return box.calendars.get(calendar_id or box.default_id)

    def event(self, event_id: str) -> Event | None:
        """By immutable ID (the store's key)."""
        with self.lock:
            cal = self.event_index.get(event_id)
            return cal.events.get(event_id) if cal else None

    def lookup(self, item_id: str, immutable: bool) -> Event | None:
        """By the ID format the request uses: an immutable ID is not accepted where default IDs are expected and
        the other way round (a stale default ID, from before a move, finds nothing)."""
        with self.lock:
            if immutable:
                return self.event(item_id)
            key = self.rest_index.get(item_id)
            return self.event(key) if key else None

    def _log(self, cal: Calendar, event_id: str, before: Event | None) -> None:
        self.seq += 1
        cal.log_seq.append(self.seq)
        cal.log_entries.append((event_id, before))

    def insert(self, event: Event) -> None:
        with self.lock:
            cal = self.calendar_index[event.calendar_id]
            cal.events[event.id] = event
            self.event_index[event.id] = cal
            self.rest_index[event.rest_id] = event.id
            self._log(cal, event.id, None)
            self._tell("created", None, event)

    def replace(self, event: Event) -> Event:
        """Store a new version of an existing event; answers the version it replaced."""
        with self.lock:
            cal = self.event_index[event.id]
            before = cal.events[event.id]
            cal.events[event.id] = event
            self._log(cal, event.id, before)
            self._tell("updated", before, event)
            return before

    def remove(self, event_id: str) -> Event | None:
        with self.lock:
            cal = self.event_index.pop(event_id, None)
            if cal is None:
                return None
            before = cal.events.pop(event_id)
            self.rest_index.pop(before.rest_id, None)
            self._log(cal, event_id, before)
            if before.transaction_id:
                box = self.mailboxes[before.mailbox_id]
                if box.transactions.get(before.transaction_id, ("",))[0] == event_id:
                    del box.transactions[before.transaction_id]
            self._tell("deleted", before, None)
            return before

    def move(self, event_id: str, calendar_id: str, now: datetime) -> Event:
        """Move an event to another calendar of its mailbox, as a user dragging it in Outlook does: it leaves the
        first calendar's view and enters the second's, keeps its immutable ID and gets a new default ID."""
        with self.lock:
            source = self.event_index[event_id]
            target = self.calendar_index[calendar_id]
            before = source.events.pop(event_id)
            self._log(source, event_id, before)
            self.rest_index.pop(before.rest_id, None)
            moved = evolve(before, calendar_id=target.id, rest_id=new_item_id(), change_key=new_change_key(),
                            modified=now)
            target.events[event_id] = moved
            self.event_index[event_id] = target
            self.rest_index[moved.rest_id] = event_id
            self._log(target, event_id, None)
            self._tell("moved", before, moved)
            return moved

    def invalidate_delta(self, user_id: str | None = None) -> int:
        """Make every delta token of one mailbox (or of all) answer 410, as Exchange does when it drops sync
        state; answers how many calendars were affected."""
        with self.lock:
            boxes = [self.mailbox(user_id)] if user_id else list(self.mailboxes.values())
            n = 0
            for box in boxes:
                for cal in box.calendars.values():
                    cal.epoch += 1
                    n += 1
            return n
