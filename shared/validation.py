"""Checks on what callers send, each failing with the name of the field and what is wrong with it.

Patterns are matched with `fullmatch`: `re.match` with `$` lets a trailing newline through ("a\n" matches
`^a$`), and such a value passes here only to break a table key later, after Outlook was written to.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from shared.errors import ValidationFailed

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DOMAIN = re.compile(r"(?=.{4,253}\Z)([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}")
_WHOLE = re.compile(r"[0-9]{1,18}")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}
# URLs a caller gives us are stored in table rows (a string property holds 32K characters) and sent on; browsers
# and most servers stop well before this (2,048 is the common practical limit of a URL).
MAX_URL = 2048
# Dates callers send (windows, expiry dates) are bounded so that any offset still converts (year 1 or 9999 with
# an offset overflows `datetime`) and Graph accepts the instant (calendar windows must lie in years 1601-4500).
MIN_YEAR, MAX_YEAR = 1900, 2999


def identifier(value: str, name: str) -> str:
    """System, subject, location and item IDs: 1-64 letters, digits, dot, dash, underscore."""
    if not _ID.fullmatch(value or ""):
        raise ValidationFailed(name, "must be 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")
    return value


def guid(value: str, name: str) -> str:
    if not _GUID.fullmatch(value):
        raise ValidationFailed(name, "must be a GUID like 00000000-0000-0000-0000-000000000000")
    return value.lower()


def tenant(value: str, name: str) -> str:
    """A directory (tenant) ID, or one of its verified domain names."""
    if _GUID.fullmatch(value):
        return value.lower()
    if _DOMAIN.fullmatch(value):
        return value.lower()
    raise ValidationFailed(name, "must be the directory (tenant) ID GUID or a domain like contoso.onmicrosoft.com")


def _split(value: str) -> SplitResult | None:
    """urlsplit, or None for text it cannot parse (e.g. an unclosed IPv6 bracket), with a bad port, or too long."""
    if len(value) > MAX_URL:
        return None
    try:
        parts = urlsplit(value.strip())
        _ = parts.port
    except ValueError:
        return None
    return parts


def origin(value: str, name: str) -> str:
    """`https://host[:port]` (http only for loopback), normalised to lower case without a trailing slash. Origins
    are where browsers are sent back to, never fetched by this app (that is shared/outbound.py's business)."""
    short_url(value, name)
    parts = _split(value)
    if parts is None:
        raise ValidationFailed(name, f"{value!r} is not a valid URL")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValidationFailed(name, f"{value!r} is not an origin like https://booking.example.edu")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValidationFailed(name, f"{value!r} must use https (http is allowed only for localhost)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def url_origin(url: str) -> str | None:
    parts = _split(url)
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def short_url(value: str, name: str) -> None:
    """A URL field within MAX_URL characters (checked before parsing, so the message says why)."""
    if len(value) > MAX_URL:
        raise ValidationFailed(name, f"is {len(value)} characters long; at most {MAX_URL}")


def https_url(value: str, name: str, *, allow_http: bool = False) -> str:
    """The URL's form only; shared/outbound.py checks where it leads (and allows http to loopback only)."""
    short_url(value, name)
    parts = _split(value)
    if parts is None:
        raise ValidationFailed(name, "must be an https URL")
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http" and _loopback_name(parts.hostname)):
        raise ValidationFailed(name, "must be an https URL (http only to loopback, on the local stack)")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValidationFailed(name, "must be an absolute URL without credentials or fragment")
    if any(c.isspace() or not c.isprintable() for c in value.strip()):
        raise ValidationFailed(name, "must be without spaces or control characters")
    return value.strip()


def _loopback_name(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return host in _LOOPBACK


def day_or_datetime(value: str, name: str) -> datetime:
    """An ISO date (end of that day, UTC) or an ISO datetime with an offset, in years MIN_YEAR-MAX_YEAR."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            parsed = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(name, "must be an ISO date (2027-06-30) or date-time with offset") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValidationFailed(name, f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    if parsed.tzinfo is None:
        raise ValidationFailed(name, "needs a UTC offset, e.g. 2027-06-30T00:00:00Z")
    return parsed.astimezone(UTC)


def whole_number(value: str | None, name: str, default: int) -> int:
    """A query parameter that is a count or a cursor: ASCII digits only (`int()` also takes spaces, a trailing
    newline, signs, underscores and other scripts' digits)."""
    if value is None or value == "":
        return default
    if not _WHOLE.fullmatch(value):
        raise ValidationFailed(name, "must be a whole number (digits 0-9, at most 18 of them)")
    return int(value)


_MAILBOX = re.compile(r"[A-Za-z0-9.!#$%&'*+=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+")


def mailbox(value: str, name: str) -> str:
    """A mailbox address such as room-101@contoso.org (what Graph's /users/{address} accepts)."""
    if len(value) > 254 or not _MAILBOX.fullmatch(value):
        raise ValidationFailed(name, "must be a mailbox address like room-101@contoso.org")
    return value.lower()


def bounded(value: str, name: str, limit: int) -> str:
    """Free text that is stored or sent on (a hint, an ID Microsoft issued): at most `limit` characters."""
    if len(value) > limit:
        raise ValidationFailed(name, f"is {len(value)} characters long; at most {limit}")
    return value


def one_of(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValidationFailed(name, f"must be one of {', '.join(allowed)}")
    return value


_MISSING = object()


def field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True,
          default: Any = None) -> Any:
    value = data.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise ValidationFailed(name, "is required")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python; JSON true must not pass as a number.
    if isinstance(value, bool) and bool not in kinds:
        raise ValidationFailed(name, f"must be {_kind_name(kinds)}")
    if not isinstance(value, kinds):
        raise ValidationFailed(name, f"must be {_kind_name(kinds)}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "an array", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
