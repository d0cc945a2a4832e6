"""What an occurrence's Outlook event says, and the identifiers that make writing it safe to repeat.

Pure functions: no I/O, so titles, time zones and markers are unit-tested directly.

- Titles follow the seeds: spaces by their location's mode (patron name; patron name and email; public
  nickname, and no title when nicknames are off or none was given); shifts by the item's title.
- Times go out as local wall-clock time in the Windows zone CLDR maps the occurrence's IANA zone to (Graph
  refuses most IANA names), or as UTC where no Windows zone fits (shared/timezones.py). All-day occurrences go
  out as midnight to midnight with `isAllDay`.
- Every event carries a marker (a single-value extended property) naming the system, subject, item and
  occurrence: the pull side tells the product's own events from bookings made in Outlook by it.
- `transactionId` is derived from the marker and the occurrence's generation with a keyed HMAC (the key is in
  Key Vault): a create retried after a timeout returns the event the first attempt made instead of a duplicate,
  and no one without the key can pre-create an event with the transactionId a create will carry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from shared.models import Item
from shared.timezones import graph_times, windows_name

# Our own property set; the marker's ID must never change once events carry it.
MARKER_PROPERTY_SET = "6f1f4e0a-8c4b-4b7e-9d55-3c1b1a2e7d10"
MARKER_ID = f"String {{{MARKER_PROPERTY_SET}}} Name OutlookCalendarSyncMarker"
MARKER_VERSION = "v1"


@dataclass(frozen=True)
class Occurrence:
    key: str
    start: datetime  # local wall-clock time, naive (midnight of the first day when all-day)
    end: datetime  # all-day: midnight of the day after the last, exclusive like Graph's
    time_zone: str
    all_day: bool = False

    @property
    def start_utc(self) -> datetime:
        return self.start.replace(tzinfo=self._placed_in).astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.replace(tzinfo=self._placed_in).astimezone(UTC)

    @property
    def _placed_in(self) -> tzinfo:
        """The zone the event's times mean in Outlook: an all-day event without a Windows zone is sent in UTC, and
        the pull must not take the difference for a change made in Outlook."""
        if self.all_day and windows_name(self.time_zone) is None:
            return UTC
        return ZoneInfo(self.time_zone)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "start": self.start.isoformat(), "end": self.end.isoformat(),
                                "time_zone": self.time_zone}
        if self.all_day:  # only then, so rows and hashes of timed occurrences stay as they were
            data["all_day"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Occurrence:
        return cls(data["key"], datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]),
                   data["time_zone"], bool(data.get("all_day", False)))


def title(item: Item, title_mode: str) -> str:
    if item.kind == "user":
        return item.title
    name = " ".join(p for p in (item.patron_first_name, item.patron_last_name) if p)
    if title_mode == "patron_name":
        return name
    if title_mode == "patron_name_email":
        if name and item.patron_email:
            return f"{name} ({item.patron_email})"
        return name or item.patron_email
    # public_nickname: the nickname when the category has nicknames on and one was given; otherwise no title
    return item.public_nickname if item.nicknames_enabled and item.public_nickname else ""


def marker(item: Item, occurrence_key: str) -> str:
    return ";".join((MARKER_VERSION, item.system, item.kind, item.subject_id, item.item_id, occurrence_key))


def parse_marker(value: str) -> dict[str, str] | None:
    """The parts of one of our markers, or None for anything else (the pull side's test for "ours")."""
    parts = value.split(";")
    if len(parts) != 6 or parts[0] != MARKER_VERSION:
        return None
    return dict(zip(("system", "kind", "subject_id", "item_id", "occurrence_key"), parts[1:], strict=True))


def transaction_id(key: bytes, item: Item, occurrence_key: str, generation: int) -> str:
    """Deterministic per occurrence and generation, so retries reuse it and a re-creation gets a new one; keyed
    (HMAC-SHA256, UUID-shaped), so it cannot be guessed from the marker, which anyone reading the event sees."""
    digest = hmac.new(key, f"{marker(item, occurrence_key)};{generation}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def marker_lookup_query(value: str) -> str:
    """The query string that finds events carrying this marker: a filter on a single-value extended property is
    documented (https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get), one on
    `transactionId` is not. The value comparison is case-insensitive there, so callers check what comes back
    with `carries_marker`."""
    quoted = value.replace("'", "''")
    parts = {
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{MARKER_ID}' and ep/value eq '{quoted}')",
        "$select": "id,transactionId",
        "$expand": f"singleValueExtendedProperties($filter=id eq '{MARKER_ID}')",
        "$top": "50",
    }
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in parts.items())


def carries_marker(event: dict[str, Any], value: str) -> bool:
    """Whether an event as Graph returned it (expanded with the marker) carries exactly this marker."""
    props = event.get("singleValueExtendedProperties") or []
    return any(isinstance(p, dict) and _same_property(str(p.get("id", "")), MARKER_ID) and p.get("value") == value
               for p in props)


def _same_property(a: str, b: str) -> bool:
    """Extended property ids: type and GUID in any case, the name exactly (names are case-sensitive)."""
    pa, pb = " ".join(a.split()).split(" ", 3), " ".join(b.split()).split(" ", 3)
    if len(pa) != 4 or len(pb) != 4:
        return False
    return [x.lower() for x in pa[:3]] == [x.lower() for x in pb[:3]] and pa[3] == pb[3]


def event_body(item: Item, occurrence: Occurrence, title_mode: str) -> dict[str, Any]:
    """The event as Graph takes it on create and update (transactionId is added on create only)."""
    start, end = graph_times(occurrence.start, occurrence.end, occurrence.time_zone, all_day=occurrence.all_day)
    body: dict[str, Any] = {
        "subject": title(item, title_mode),
        "start": start,
        "end": end,
        "body": {"contentType": "text", "content": item.notes},
        "location": {"displayName": item.location_text},
        "showAs": "busy",
        "isReminderOn": False,
        "singleValueExtendedProperties": [{"id": MARKER_ID, "value": marker(item, occurrence.key)}],
    }
    if occurrence.all_day:
        body["isAllDay"] = True
    return body


def content_hash(body: dict[str, Any]) -> str:
    """Fingerprint of what was written: an unchanged occurrence is not written again."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
