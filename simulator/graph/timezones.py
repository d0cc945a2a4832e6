"""Time zones as Graph speaks them: Windows names (what Outlook stores and often answers with) and IANA names.

Clients must send a `timeZone` with every `dateTimeTimeZone` and must cope with Windows names coming back, so the
simulator accepts both and echoes whichever name the client asked for. Everything is stored in UTC; local wall
times only matter when expanding recurrences (09:00 every Monday stays 09:00 local across a DST change).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simulator.graph.errors import GraphError

# Windows zone name -> IANA zone (the CLDR "001" territory mapping) for the zones a booking system is likely to
# meet. Unknown Windows names are refused the way Graph refuses them rather than guessed.
WINDOWS_TO_IANA: dict[str, str] = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "UTC-11": "Etc/GMT+11",
    "UTC-09": "Etc/GMT+9",
    "UTC-08": "Etc/GMT+8",
    "UTC-02": "Etc/GMT+2",
    "UTC+12": "Etc/GMT-12",
    "UTC+13": "Etc/GMT-13",
    "Dateline Standard Time": "Etc/GMT+12",
    "Samoa Standard Time": "Pacific/Apia",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "Pacific Standard Time (Mexico)": "America/Tijuana",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Mountain Standard Time (Mexico)": "America/Mazatlan",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Central America Standard Time": "America/Guatemala",
    "Canada Central Standard Time": "America/Regina",
    "Eastern Standard Time": "America/New_York",
    "Eastern Standard Time (Mexico)": "America/Cancun",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "SA Pacific Standard Time": "America/Bogota",
    "Venezuela Standard Time": "America/Caracas",
    "Atlantic Standard Time": "America/Halifax",
    "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "SA Eastern Standard Time": "America/Cayenne",
    "Greenland Standard Time": "America/Nuuk",
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "Morocco Standard Time": "Africa/Casablanca",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "GTB Standard Time": "Europe/Bucharest",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kyiv",
    "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Israel Standard Time": "Asia/Jerusalem",
    "Turkey Standard Time": "Europe/Istanbul",
    "Russian Standard Time": "Europe/Moscow",
    "Arab Standard Time": "Asia/Riyadh",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "West Asia Standard Time": "Asia/Tashkent",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Kathmandu",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "Myanmar Standard Time": "Asia/Yangon",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Taipei Standard Time": "Asia/Taipei",
    "W. Australia Standard Time": "Australia/Perth",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "Tasmania Standard Time": "Australia/Hobart",
    "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Vladivostok Standard Time": "Asia/Vladivostok",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Fiji Standard Time": "Pacific/Fiji",
    "Tonga Standard Time": "Pacific/Tongatapu",
}
_WINDOWS_LOWER = {k.lower(): v for k, v in WINDOWS_TO_IANA.items()}


@lru_cache(maxsize=512)
def _lookup(name: str) -> tzinfo | None:
    iana = _WINDOWS_LOWER.get(name.lower())
    if iana == "UTC" or name.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return UTC
    try:
        return ZoneInfo(iana or name)
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


def iso_utc(instant: datetime) -> str:
    """createdDateTime / lastModifiedDateTime style: UTC with 7 fractional digits and a Z."""
    return format_local(instant, UTC) + "Z"
