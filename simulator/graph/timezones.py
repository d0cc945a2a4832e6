"""Time zones as Graph speaks them: Windows names (what Outlook stores and often answers with) and the short list
of IANA names its documentation adds, and nothing else.

https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone: "the timeZone property can be set to any
of the time zones currently supported by Windows, as well as the additional time zones supported by the calendar
API" (the list below). Other names fail with TimeZoneNotSupportedException ("A valid TimeZone value must be
specified...", https://github.com/microsoftgraph/microsoft-graph-docs/issues/4758). Windows names are CLDR's
windowsZones.xml set (tzlocal.windows_tz), each placed by its "001" IANA zone. Everything is stored in UTC; local
wall times only matter when expanding recurrences and writing all-day events.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from simulator.graph.errors import GraphError

# The "Additional time zones" of the dateTimeTimeZone page, as listed (its "Europe/Kyiv (Kiev)", "Asia/Toshkent
# (Tashkent)", "Asia/Astana (Almaty)" and "Asia/Yangon (Rangoon)" taken as the IANA names they stand for).
_DOCUMENTED = """
Etc/GMT+12 Etc/GMT+11 Pacific/Honolulu America/Anchorage America/Santa_Isabel America/Los_Angeles America/Phoenix
America/Chihuahua America/Denver America/Guatemala America/Chicago America/Mexico_City America/Regina
America/Bogota America/New_York America/Indiana/Indianapolis America/Caracas America/Asuncion America/Halifax
America/Cuiaba America/La_Paz America/Santiago America/St_Johns America/Sao_Paulo America/Argentina/Buenos_Aires
America/Cayenne America/Godthab America/Montevideo America/Bahia Etc/GMT+2 Atlantic/Azores Atlantic/Cape_Verde
Africa/Casablanca Etc/GMT Europe/London Atlantic/Reykjavik Europe/Berlin Europe/Budapest Europe/Paris
Europe/Warsaw Africa/Lagos Africa/Windhoek Europe/Bucharest Asia/Beirut Africa/Cairo Asia/Damascus
Africa/Johannesburg Europe/Kyiv Europe/Kiev Europe/Istanbul Asia/Jerusalem Asia/Amman Asia/Baghdad
Europe/Kaliningrad Asia/Riyadh Africa/Nairobi Asia/Tehran Asia/Dubai Asia/Baku Europe/Moscow Indian/Mauritius
Asia/Tbilisi Asia/Yerevan Asia/Kabul Asia/Karachi Asia/Tashkent Asia/Kolkata Asia/Colombo Asia/Kathmandu
Asia/Almaty Asia/Dhaka Asia/Yekaterinburg Asia/Yangon Asia/Rangoon Asia/Bangkok Asia/Novosibirsk Asia/Shanghai
Asia/Krasnoyarsk Asia/Singapore Australia/Perth Asia/Taipei Asia/Ulaanbaatar Asia/Irkutsk Asia/Tokyo Asia/Seoul
Australia/Adelaide Australia/Darwin Australia/Brisbane Australia/Sydney Pacific/Port_Moresby Australia/Hobart
Asia/Yakutsk Pacific/Guadalcanal Asia/Vladivostok Pacific/Auckland Etc/GMT-12 Pacific/Fiji Asia/Magadan
Pacific/Tongatapu Pacific/Apia Pacific/Kiritimati
"""
DOCUMENTED_IANA = frozenset(_DOCUMENTED.split())
# Listed, yet refused on event create: "ErrorPropertyValidationFailure ... At least one property failed
# validation." (https://github.com/microsoftgraph/microsoft-graph-docs/issues/19286).
REFUSED_ON_EVENTS = frozenset({"africa/casablanca"})
WINDOWS_TO_IANA: dict[str, str] = dict(win_tz)
_WINDOWS_LOWER = {k.lower(): v for k, v in WINDOWS_TO_IANA.items()}
_IANA_LOWER = {k.lower(): k for k in DOCUMENTED_IANA}


@lru_cache(maxsize=512)
def _lookup(name: str) -> tzinfo | None:
    key = name.lower()
    iana = _WINDOWS_LOWER.get(key) or _IANA_LOWER.get(key)
    if iana is None:
        return None
    if iana in ("UTC", "Etc/UTC", "Etc/GMT"):
        return UTC
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone(name: str | None) -> tzinfo:
    """The tzinfo for a Windows or IANA name; Graph's own error for names it does not know."""
    found = _lookup(name.strip()) if name and name.strip() else None
    if found is None:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name or ''}'.",
        )
    return found


def check_event_zone(name: str) -> None:
    """What an event's start or end may not be written in, though the zone list has it."""
    if name.strip().lower() in REFUSED_ON_EVENTS:
        raise GraphError(400, "ErrorPropertyValidationFailure", "At least one property failed validation.")


def known_zone(name: str | None) -> bool:
    return bool(name and name.strip() and _lookup(name.strip()) is not None)


def parse_iso(text: str) -> datetime:
    """A timestamp as Graph accepts them: up to 7 fractional digits, optional offset (offsetless means UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python keeps at most 6 fractional digits; Graph writes 7.
    if "." in value:
        head, _, tail = value.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits):]
        value = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    parsed = datetime.fromisoformat(value)
    return parsed


def parse_instant(text: str) -> datetime:
    """A query-string instant (calendarView bounds): offset honoured, none means UTC."""
    parsed = parse_iso(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def from_graph(value: object, field: str) -> tuple[datetime, str]:
    """A `dateTimeTimeZone` object -> (aware UTC instant, the zone name the client used)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise GraphError(400, "ErrorInvalidRequest", f"The property '{field}' must be a dateTimeTimeZone object.")
    name = value.get("timeZone") or "UTC"
    if not isinstance(name, str):
        raise GraphError(400, "ErrorInvalidRequest", f"'{field}.timeZone' must be a string.")
    tz = zone(name)
    try:
        local = parse_iso(value["dateTime"])
    except ValueError:
        raise GraphError(
            400, "ErrorInvalidRequest", f"Cannot convert the literal '{value['dateTime']}' to a dateTime."
        ) from None
    if not 1601 <= local.year <= 4500:  # Exchange's date range
        raise GraphError(400, "ErrorInvalidRequest", f"The date '{value['dateTime']}' is out of range.")
    if local.tzinfo is not None:  # an explicit offset wins over the zone name
        return local.astimezone(UTC), name
    return local.replace(tzinfo=tz).astimezone(UTC), name


def format_local(instant: datetime, tz: tzinfo) -> str:
    t = instant.astimezone(tz)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}0"


def to_graph(instant: datetime, zone_name: str) -> dict[str, str]:
    """An instant as Graph writes it: wall time in `zone_name` with 7 fractional digits, and the name echoed."""
    return {"dateTime": format_local(instant, zone(zone_name)), "timeZone": zone_name}


def to_graph_all_day(instant: datetime, own_zone: str, zone_name: str) -> dict[str, str]:
    """An all-day event's end as Graph answers it: midnight of its date in the event's own zone, labelled with the
    zone asked for but not converted to it ("All-day events will always return midnight as the start and end time,
    regardless of time zone": https://github.com/jasonjoh/php-calendar/issues/9,
    https://github.com/microsoftgraph/microsoft-graph-docs/issues/16798). getSchedule converts them (it does not
    come through here)."""
    return {"dateTime": format_local(instant, zone(own_zone)), "timeZone": zone_name}


def iso_utc(instant: datetime) -> str:
    """createdDateTime / lastModifiedDateTime style: UTC with 7 fractional digits and a Z."""
    return format_local(instant, UTC) + "Z"
