"""Reading a booking or shift from the host: every problem is a 400 naming the field (and, in a bulk export, the
item's position), so nothing half-valid reaches Outlook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared import validation
from shared.errors import ValidationFailed
from shared.export.content import Occurrence
from shared.models import Item

MAX_OCCURRENCES_PER_ITEM = 500
MAX_OCCURRENCE_LENGTH = timedelta(days=31)
MAX_TEXT = 4000
MIN_YEAR, MAX_YEAR = 1970, 2199  # bookings and shifts; also keeps every instant storable and convertible


def parse_item(system: str, kind: str, subject_id: str, item_id: str, body: dict[str, Any],
               *, prefix: str = "") -> Item:
    validation.identifier(item_id, f"{prefix}item")
    name = f"{prefix}occurrences"
    raw = body.get("occurrences")
    if not isinstance(raw, list):
        raise ValidationFailed(name, "is required: a list of {key, start, end, time_zone}")
    if len(raw) > MAX_OCCURRENCES_PER_ITEM:
        raise ValidationFailed(name, f"at most {MAX_OCCURRENCES_PER_ITEM} per item")
    occurrences = [parse_occurrence(o, f"{name}[{i}]") for i, o in enumerate(raw)]
    keys = [o.key for o in occurrences]
    if len(set(keys)) != len(keys):
        raise ValidationFailed(name, "occurrence keys must be unique within the item")
    patron = body.get("patron") or {}
    if not isinstance(patron, dict):
        raise ValidationFailed(f"{prefix}patron", "must be an object with first_name, last_name, email")
    return Item(
        system=system, kind=kind, subject_id=subject_id, item_id=item_id,
        title=_text(body, "title", prefix),
        patron_first_name=_text(patron, "first_name", f"{prefix}patron."),
        patron_last_name=_text(patron, "last_name", f"{prefix}patron."),
        patron_email=_text(patron, "email", f"{prefix}patron."),
        public_nickname=_text(body, "public_nickname", prefix),
        nicknames_enabled=_flag(body, "nicknames_enabled", prefix, default=True),
        location=_location(body, prefix),
        location_text=_text(body, "location_text", prefix),
        notes=_text(body, "notes", prefix),
        occurrences=[o.to_json() for o in occurrences],
    )


def parse_occurrence(raw: Any, name: str) -> Occurrence:
    if not isinstance(raw, dict):
        raise ValidationFailed(name, "must be an object with key, start, end and time_zone")
    key = raw.get("key")
    if not isinstance(key, str):
        raise ValidationFailed(f"{name}.key", "is required: the host's stable key of this date/time")
    validation.identifier(key, f"{name}.key")
    zone_name = raw.get("time_zone")
    if not isinstance(zone_name, str) or not zone_name:
        raise ValidationFailed(f"{name}.time_zone", "is required: an IANA time zone like Europe/London")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory, or too long
        raise ValidationFailed(f"{name}.time_zone", "must be an IANA time zone like Europe/London") from None
    all_day = _flag(raw, "all_day", f"{name}.", default=False)
    if all_day:
        return _all_day(raw, key, name, zone_name)
    start = _local(raw, "start", name, zone)
    end = _local(raw, "end", name, zone)
    if end <= start:
        raise ValidationFailed(f"{name}.end", "must be after start")
    if end - start > MAX_OCCURRENCE_LENGTH:
        raise ValidationFailed(f"{name}.end", "an occurrence may last at most 31 days")
    return Occurrence(key, start, end, zone_name)


def _all_day(raw: dict[str, Any], key: str, name: str, zone_name: str) -> Occurrence:
    """Whole days in the occurrence's zone, end exclusive as Graph's: one day is start_date to the next day."""
    for extra in ("start", "end"):
        if raw.get(extra) is not None:
            raise ValidationFailed(f"{name}.{extra}", "an all-day occurrence takes start_date and end_date instead")
    days = []
    for field in ("start_date", "end_date"):
        value = raw.get(field)
        try:
            if not isinstance(value, str) or len(value) != 10:
                raise ValueError(value)
            day = datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise ValidationFailed(f"{name}.{field}", "is required for an all-day occurrence: a date like "
                                   "2026-03-29 (end_date is the day after the last, like Graph's)") from None
        if not MIN_YEAR <= day.year <= MAX_YEAR:
            raise ValidationFailed(f"{name}.{field}", f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
        days.append(day)
    start, end = days
    if end <= start:
        raise ValidationFailed(f"{name}.end_date", "must be after start_date (it is exclusive: the day after the last)")
    if end - start > MAX_OCCURRENCE_LENGTH:
        raise ValidationFailed(f"{name}.end_date", "an occurrence may last at most 31 days")
    return Occurrence(key, start, end, zone_name, all_day=True)


def _local(raw: dict[str, Any], key: str, name: str, zone: ZoneInfo) -> datetime:
    """Wall-clock time in the occurrence's zone. An offset, if given, is converted; a time that does not exist
    in the zone (the hour skipped when DST starts) is refused rather than silently moved."""
    value = raw.get(key)
    if not isinstance(value, str):
        raise ValidationFailed(f"{name}.{key}", "is required: an ISO date-time like 2026-03-29T09:00:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{name}.{key}", "must be an ISO date-time like 2026-03-29T09:00:00") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValidationFailed(f"{name}.{key}", f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    if parsed.tzinfo is not None:
        return parsed.astimezone(zone).replace(tzinfo=None)
    round_trip = parsed.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != parsed:
        raise ValidationFailed(f"{name}.{key}", f"{value} does not exist in {zone.key} (clocks go forward then)")
    return parsed.replace(microsecond=0)


def _text(data: dict[str, Any], key: str, prefix: str) -> str:
    value = data.get(key) or ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{prefix}{key}", "must be a string")
    if len(value) > MAX_TEXT:
        raise ValidationFailed(f"{prefix}{key}", f"at most {MAX_TEXT} characters")
    return value.strip()


def _flag(data: dict[str, Any], key: str, prefix: str, *, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ValidationFailed(f"{prefix}{key}", "must be true or false")
    return value


def _location(data: dict[str, Any], prefix: str) -> str | None:
    value = data.get("location")
    if value is not None and not isinstance(value, str):
        raise ValidationFailed(f"{prefix}location", "must be the host's location ID")
    return validation.identifier(value, f"{prefix}location") if value else None
