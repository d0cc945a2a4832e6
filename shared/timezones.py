"""Time zones between the host (IANA names) and Graph (Windows names, a documented list of IANA names, and
whatever Outlook stored).

Graph refuses IANA names outside its short documented list (TimeZoneNotSupportedException, and
ErrorPropertyValidationFailure for some it lists), so events go out in the Windows zone CLDR maps the host's
zone to; `tzlocal.windows_tz` carries CLDR's windowsZones.xml, so the mapping is maintained upstream rather
than here. Where CLDR has no Windows zone (Antarctica/Troll, say), or its Windows zone keeps different clocks
at these instants, or a wall time happens twice, the instant goes out in UTC: correct, if not pretty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

GRAPH_UTC = "UTC"
_UTC_NAMES = {"utc", "etc/utc", "etc/gmt", "gmt", "z", "etc/universal", "etc/zulu", "universal", "zulu"}
_WIN_LOWER = {name.lower(): iana for name, iana in win_tz.items()}


@lru_cache(maxsize=1024)
def windows_name(iana: str) -> str | None:
    """The Windows zone CLDR gives an IANA zone (its aliases too), or None when it has none."""
    if iana.lower() in _UTC_NAMES:
        return GRAPH_UTC
    return tz_win.get(iana)


@lru_cache(maxsize=1024)
def resolve(name: str | None) -> ZoneInfo | None:
    """A zone name as Graph may write it (Windows, IANA, or a custom "tzone://Microsoft/Custom") -> its zone;
    None for what no table knows, so callers fall back and say so rather than fail."""
    if not name or not name.strip():
        return None
    text = name.strip()
    if text.lower() in _UTC_NAMES:
        return ZoneInfo("UTC")
    key = _WIN_LOWER.get(text.lower(), text)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    return local.replace(tzinfo=zone, fold=0).utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset()


def _instant(local: datetime, zone: tzinfo) -> datetime:
    return local.replace(tzinfo=zone).astimezone(UTC)


def _wall(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def graph_times(start: datetime, end: datetime, iana: str, *,
                all_day: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """An occurrence's local wall times as Graph's start and end `dateTimeTimeZone`s.

    Timed: the wall time in the mapped Windows zone when that zone puts it at the same instant (so Outlook keeps
    showing it in the room's zone), else the UTC instant. All-day: midnight to midnight in the Windows zone, or in
    UTC without one; Graph wants both ends at midnight of one zone, so there is no converting them."""
    win = windows_name(iana)
    if all_day:
        name = win or GRAPH_UTC
        return {"dateTime": _wall(start), "timeZone": name}, {"dateTime": _wall(end), "timeZone": name}
    zone = ZoneInfo(iana)
    mapped = resolve(win) if win else None
    if mapped is not None and not _ambiguous(start, zone) and not _ambiguous(end, zone) and all(
            _instant(t, mapped) == _instant(t, zone) for t in (start, end)):
        return {"dateTime": _wall(start), "timeZone": win or GRAPH_UTC}, {"dateTime": _wall(end),
                                                                          "timeZone": win or GRAPH_UTC}
    return ({"dateTime": _wall(_instant(start, zone).replace(tzinfo=None)), "timeZone": GRAPH_UTC},
            {"dateTime": _wall(_instant(end, zone).replace(tzinfo=None)), "timeZone": GRAPH_UTC})


def parse_graph_datetime(value: Any) -> datetime | None:
    """Graph's `dateTime` text (7 fractional digits, no offset; an offset or Z if someone sent one) as naive wall
    time, or with its offset when it had one."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str) or not value["dateTime"]:
        return None
    text = value["dateTime"].strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, frac = text.split(".", 1)
        digits = "".join(ch for ch in frac if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{frac[len(digits):]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class EventTimes:
    """When a Graph event happens, and how sure that is: all-day events come back as bare dates."""

    start_utc: datetime
    end_utc: datetime
    all_day: bool
    time_zone: str  # IANA key of the event's own zone ("" when Graph's name is unknown)
    zone_assumed: bool  # True when the all-day dates were placed in UTC for want of a known zone
    start_date: date | None = None  # all-day only; end exclusive, as Graph's
    end_date: date | None = None


def event_times(event: dict[str, Any]) -> EventTimes | None:
    """An event as calendarView or delta answer it. Timed events are read in the zone their `dateTime` is labelled
    with (we ask for UTC; a Windows or IANA label is honoured too). All-day events are answered as midnight of
    their dates whatever zone was asked for (https://github.com/microsoftgraph/microsoft-graph-docs/issues/16798),
    so their dates are read as written and placed in the event's own zone (`originalStartTimeZone`)."""
    start, end = parse_graph_datetime(event.get("start")), parse_graph_datetime(event.get("end"))
    if start is None or end is None:
        return None
    own = resolve(str(event.get("originalStartTimeZone") or ""))
    own_key = own.key if own is not None else ""
    if event.get("isAllDay"):
        first, last = start.date(), end.date()
        zone = own or ZoneInfo("UTC")
        return EventTimes(datetime.combine(first, time(0), zone).astimezone(UTC),
                          datetime.combine(last, time(0), zone).astimezone(UTC),
                          True, own_key, own is None, first, last)
    return EventTimes(_labelled(start, event.get("start")), _labelled(end, event.get("end")), False, own_key,
                      False)


def _labelled(value: datetime, raw: Any) -> datetime:
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    label = resolve(str(raw.get("timeZone") or "")) if isinstance(raw, dict) else None
    return value.replace(tzinfo=label or UTC).astimezone(UTC)
