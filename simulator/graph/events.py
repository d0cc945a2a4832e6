"""Event resources: how a JSON body becomes a stored event, how PATCH changes it, and how it is written back.

The JSON produced here is the shape of Graph's `event` resource (the properties the product reads, plus the
ones Graph always includes), so client code is parsed against realistic payloads: UTC by default, the client's
zone with `Prefer: outlook.timezone`, extended properties only when expanded, `transactionId` only when set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime, time
from typing import Any

from simulator.directory import User
from simulator.graph.errors import bad_request, item_not_found
from simulator.graph.recurrence import Recurrence
from simulator.graph.store import (
    Event,
    Instance,
    Store,
    new_change_key,
    new_immutable_id,
    occurrence,
    parse_occurrence_id,
    shown_id,
)
from simulator.graph.timezones import check_event_zone, from_graph, iso_utc, to_graph, to_graph_all_day, zone

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
IMPORTANCE = ("low", "normal", "high")
SENSITIVITY = ("normal", "personal", "private", "confidential")
_NULL_TIME = "0001-01-01T00:00:00Z"
_ICAL_PREFIX = "040000008200E00074C5B7101A82E00800000000"  # the fixed head of Outlook's global object IDs
_BODY_TO_FIELD = {"subject": "subject", "body": "body", "showAs": "show_as", "location": "location",
                  "categories": "categories", "attendees": "attendees", "importance": "importance",
                  "sensitivity": "sensitivity", "isReminderOn": "is_reminder_on",
                  "reminderMinutesBeforeStart": "reminder_minutes", "isAllDay": "is_all_day"}
# Fields an occurrence can override when it becomes an exception.
_EXCEPTION_FIELDS = ("subject", "body", "location", "show_as", "categories", "importance", "sensitivity",
                     "is_reminder_on", "reminder_minutes", "attendees")


def email(user: User) -> dict[str, Any]:
    return {"emailAddress": {"name": user.display_name, "address": user.address}}


def _norm_prop_id(prop_id: str) -> str:
    return " ".join(prop_id.split()).lower()


# --- parsing --------------------------------------------------------------------------------------------------


def _str(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_request(f"The property '{key}' must be a string.", "ErrorInvalidRequest")
    return value


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"The property '{key}' must be an integer.", "ErrorInvalidRequest")
    return value


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"The property '{key}' must be true or false.", "ErrorInvalidRequest")
    return value


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(key) or default
    match = next((a for a in allowed if a.lower() == str(value).lower()), None)
    if match is None:
        raise bad_request(f"Invalid value '{value}' for property '{key}'.", "ErrorInvalidRequest")
    return match


def _body(raw: object) -> dict[str, str]:
    if raw is None:
        return {"contentType": "html", "content": ""}
    if not isinstance(raw, dict):
        raise bad_request("The property 'body' must be an itemBody object.", "ErrorInvalidRequest")
    kind = str(raw.get("contentType") or "text").lower()
    if kind not in ("text", "html"):
        raise bad_request(f"Invalid body contentType '{kind}'.", "ErrorInvalidRequest")
    return {"contentType": kind, "content": str(raw.get("content") or "")}


def _location(raw: object) -> dict[str, Any]:
    base: dict[str, Any] = {"displayName": "", "locationType": "default", "uniqueIdType": "unknown",
                            "address": {}, "coordinates": {}}
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise bad_request("The property 'location' must be a location object.", "ErrorInvalidRequest")
    merged = {**base, **{k: v for k, v in raw.items() if v is not None}}
    merged["displayName"] = str(merged.get("displayName") or "")
    return merged


def _attendees(raw: object) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_request("The property 'attendees' must be a collection.", "ErrorInvalidRequest")
    out = []
    for item in raw:
        addr = item.get("emailAddress") if isinstance(item, dict) else None
        if not isinstance(addr, dict) or not addr.get("address"):
            raise bad_request("Each attendee needs an emailAddress with an address.", "ErrorInvalidRequest")
        out.append({
            "type": str(item.get("type") or "required"),
            "status": {"response": "none", "time": _NULL_TIME},
            "emailAddress": {"name": str(addr.get("name") or addr["address"]), "address": str(addr["address"])},
        })
    return tuple(out)


def _categories(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise bad_request("The property 'categories' must be a collection of strings.", "ErrorInvalidRequest")
    return tuple(raw)


def _extended(raw: object, existing: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """Merge `singleValueExtendedProperties` into the existing ones (PATCH adds or replaces by id)."""
    props = {_norm_prop_id(pid): (pid, value) for pid, value in existing}
    if raw is None:
        return tuple(props.values())
    if not isinstance(raw, list):
        raise bad_request("'singleValueExtendedProperties' must be a collection.", "ErrorInvalidRequest")
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or "value" not in item:
            raise bad_request("Each extended property needs an 'id' and a 'value'.", "ErrorInvalidRequest")
        pid = " ".join(item["id"].split())
        if not re.match(r"^\w+ (\{[0-9a-fA-F-]{36}\} (Name|Id) \S.*|0x[0-9a-fA-F]+)$", pid):
            raise bad_request(f"The extended property id '{pid}' is not valid.", "ErrorInvalidProperty")
        props[_norm_prop_id(pid)] = (pid, "" if item["value"] is None else str(item["value"]))
    return tuple(props.values())


def _midnight(instant: datetime, zone_name: str) -> bool:
    """Midnight in the zone, or where the zone skips midnight (Santiago's clocks go from 24:00 to 01:00) the
    instant a client's "00:00" stands for."""
    tz = zone(zone_name)
    local = instant.astimezone(tz)
    return local.time() == time(0) or instant == datetime.combine(local.date(), time(0), tz).astimezone(instant.tzinfo)


def _check_all_day(start: datetime, end: datetime, start_zone: str, end_zone: str) -> None:
    # isAllDay: "start and end time must be set to midnight and be in the same time zone"
    # (https://learn.microsoft.com/en-us/graph/api/resources/event#properties).
    ls, le = start.astimezone(zone(start_zone)), end.astimezone(zone(end_zone))
    if (not _midnight(start, start_zone) or not _midnight(end, end_zone) or le.date() <= ls.date()
            or start_zone.strip().lower() != end_zone.strip().lower()):
        raise bad_request(
            "The start and end of an all-day event must be midnight, at least one day apart.",
            "ErrorPropertyValidationFailure",
        )


def fingerprint(body: dict[str, Any]) -> str:
    """What "the same create" means for transactionId replays: the same request body."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_event(body: dict[str, Any], *, mailbox: User, calendar_id: str, organizer: User, now: datetime) -> Event:
    if "start" not in body or "end" not in body:
        raise bad_request("The 'start' and 'end' properties are required.", "ErrorInvalidRequest")
    start, start_zone = from_graph(body["start"], "start")
    end, end_zone = from_graph(body["end"], "end")
    check_event_zone(start_zone)
    check_event_zone(end_zone)
    if end < start:
        raise bad_request("The end time of the event is before its start time.", "ErrorInvalidRequest")
    all_day = _bool(body, "isAllDay", False)
    if all_day:
        _check_all_day(start, end, start_zone, end_zone)
    recurrence = Recurrence.parse(body["recurrence"], start_zone) if body.get("recurrence") else None
    transaction_id = body.get("transactionId") or None
    if transaction_id is not None and not isinstance(transaction_id, str):
        raise bad_request("'transactionId' must be a string.", "ErrorInvalidRequest")
    event_id = new_immutable_id()
    return Event(
        id=event_id,
        mailbox_id=mailbox.id,
        calendar_id=calendar_id,
        subject=_str(body, "subject"),
        body=_body(body.get("body")),
        start=start,
        end=end,
        start_zone=start_zone,
        end_zone=end_zone,
        is_all_day=all_day,
        show_as=_choice(body, "showAs", SHOW_AS, "busy"),
        location=_location(body.get("location")),
        categories=_categories(body.get("categories")),
        attendees=_attendees(body.get("attendees")),
        organizer=email(organizer),
        importance=_choice(body, "importance", IMPORTANCE, "normal"),
        sensitivity=_choice(body, "sensitivity", SENSITIVITY, "normal"),
        is_reminder_on=_bool(body, "isReminderOn", True),
        reminder_minutes=_int(body, "reminderMinutesBeforeStart", 15),
        recurrence=recurrence,
        transaction_id=transaction_id,
        extended=_extended(body.get("singleValueExtendedProperties")),
        ical_uid=_ICAL_PREFIX + hashlib.sha256(event_id.encode()).hexdigest()[:40].upper(),
        change_key=new_change_key(),
        created=now,
        modified=now,
    )


def apply_patch(event: Event, body: dict[str, Any], now: datetime) -> Event:
    """A new version of a single event or series master with the PATCH body applied."""
    if "transactionId" in body and body["transactionId"] not in (None, event.transaction_id):
        raise bad_request("The transactionId of an event cannot be changed.", "ErrorInvalidRequest")
    changes: dict[str, Any] = {}
    start, end = event.start, event.end
    if "start" in body:
        start, changes["start_zone"] = from_graph(body["start"], "start")
        check_event_zone(changes["start_zone"])
        changes["start"] = start
    if "end" in body:
        end, changes["end_zone"] = from_graph(body["end"], "end")
        check_event_zone(changes["end_zone"])
        changes["end"] = end
    if end < start:
        raise bad_request("The end time of the event is before its start time.", "ErrorInvalidRequest")
    simple: dict[str, Callable[[], Any]] = {
        "subject": lambda: _str(body, "subject"),
        "body": lambda: _body(body["body"]),
        "showAs": lambda: _choice(body, "showAs", SHOW_AS, "busy"),
        "location": lambda: _location(body["location"]),
        "categories": lambda: _categories(body["categories"]),
        "attendees": lambda: _attendees(body["attendees"]),
        "importance": lambda: _choice(body, "importance", IMPORTANCE, "normal"),
        "sensitivity": lambda: _choice(body, "sensitivity", SENSITIVITY, "normal"),
        "isReminderOn": lambda: _bool(body, "isReminderOn", True),
        "reminderMinutesBeforeStart": lambda: _int(body, "reminderMinutesBeforeStart", 15),
        "isAllDay": lambda: _bool(body, "isAllDay", False),
    }
    for key, make in simple.items():
        if key in body:
            changes[_BODY_TO_FIELD[key]] = make()
    if "singleValueExtendedProperties" in body:
        changes["extended"] = _extended(body["singleValueExtendedProperties"], event.extended)
    if "recurrence" in body:
        raw = body["recurrence"]
        changes["recurrence"] = Recurrence.parse(raw, changes.get("start_zone", event.start_zone)) if raw else None
    if changes.get("is_all_day", event.is_all_day):
        _check_all_day(start, end, changes.get("start_zone", event.start_zone), changes.get("end_zone", event.end_zone))
    if {"start", "end", "recurrence", "is_all_day"} & changes.keys() and (event.exceptions or event.cancelled):
        # Outlook drops a series' exceptions when its pattern or times change.
        changes["exceptions"], changes["cancelled"] = {}, frozenset()
    return dataclasses.replace(event, **changes, change_key=new_change_key(), modified=now)


def patch_occurrence(master: Event, inst: Instance, body: dict[str, Any], now: datetime) -> Event:
    """Turn an occurrence into an exception (or update one): the master gets a new version with the override."""
    if body.get("recurrence"):
        raise bad_request("An occurrence cannot have its own recurrence.", "ErrorInvalidRequest")
    assert inst.original is not None  # nosec B101 - an invariant the caller guarantees
    overrides = dict(inst.overrides or {})
    overrides.setdefault("start", inst.start)
    overrides.setdefault("end", inst.end)
    if "start" in body:
        overrides["start"], _ = from_graph(body["start"], "start")
    if "end" in body:
        overrides["end"], _ = from_graph(body["end"], "end")
    if overrides["end"] < overrides["start"]:
        raise bad_request("The end time of the event is before its start time.", "ErrorInvalidRequest")
    patched = apply_patch(dataclasses.replace(master, recurrence=None, exceptions={}, cancelled=frozenset()),
                          {k: v for k, v in body.items() if k not in ("start", "end", "isAllDay")}, now)
    for key, name in _BODY_TO_FIELD.items():
        if key in body and name in _EXCEPTION_FIELDS:
            overrides[name] = getattr(patched, name)
    overrides["change_key"] = new_change_key()
    overrides["modified"] = now
    exceptions = {**master.exceptions, inst.original: overrides}
    return dataclasses.replace(master, exceptions=exceptions, change_key=new_change_key(), modified=now)


# --- resolving IDs --------------------------------------------------------------------------------------------


def resolve(store: Store, mailbox_id: str, item_id: str, calendar_id: str | None = None, *,
            immutable: bool = False) -> Instance:
    """An event or occurrence ID, checked to live in this mailbox (and calendar when the path names one), in the
    ID format the request chose (`immutable`: it sent `Prefer: IdType="ImmutableId"`)."""
    parsed = parse_occurrence_id(item_id)
    master = store.lookup(parsed[0] if parsed else item_id, immutable)
    if master is None or master.mailbox_id != mailbox_id or (calendar_id and master.calendar_id != calendar_id):
        raise item_not_found()
    if parsed is None:
        return Instance(master, master.id, master.start, master.end)
    if master.recurrence is None:
        raise item_not_found()
    inst = occurrence(master, parsed[1])
    if inst is None:
        raise item_not_found()
    return inst


# --- serialization --------------------------------------------------------------------------------------------


def _preview(body: dict[str, str]) -> str:
    text = body.get("content", "")
    if body.get("contentType") == "html":
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return " ".join(text.split())[:255]


def _when(instant: datetime, all_day: bool, own_zone: str, tz_name: str) -> dict[str, str]:
    return to_graph_all_day(instant, own_zone, tz_name) if all_day else to_graph(instant, tz_name)


def serialize(inst: Instance, tz_name: str, owner_address: str, *, select: set[str] | None = None,
              extended: set[str] | None = None, immutable: bool = False) -> dict[str, Any]:
    """Graph's JSON for an event instance. `select` limits the properties (unknown names are ignored, as Graph's
    `$select` on events does); `extended` is the set of extended-property ids asked for via `$expand`."""
    ev = inst.event
    o = inst.overrides or {}
    kind = inst.kind if inst.original is not None else ("seriesMaster" if ev.recurrence else "singleInstance")
    change_key = o.get("change_key", ev.change_key)
    value = {
        name: o.get(name, getattr(ev, name)) for name in _EXCEPTION_FIELDS
    }
    item_id = shown_id(inst.id, ev, inst.original, immutable)
    ical = ev.ical_uid if inst.original is None else ev.ical_uid[:40] + hashlib.sha256(
        inst.id.encode()).hexdigest()[:40].upper()
    organizer_address = ev.organizer.get("emailAddress", {}).get("address", "")
    doc: dict[str, Any] = {
        "@odata.etag": f'W/"{change_key}"',
        "id": item_id,
        "createdDateTime": iso_utc(ev.created),
        "lastModifiedDateTime": iso_utc(o.get("modified", ev.modified)),
        "changeKey": change_key,
        "categories": list(value["categories"]),
        "transactionId": ev.transaction_id,
        "originalStartTimeZone": ev.start_zone,
        "originalEndTimeZone": ev.end_zone,
        "iCalUId": ical,
        "uid": ev.ical_uid,
        "reminderMinutesBeforeStart": value["reminder_minutes"],
        "isReminderOn": value["is_reminder_on"],
        "hasAttachments": False,
        "subject": value["subject"],
        "bodyPreview": _preview(value["body"]),
        "importance": value["importance"],
        "sensitivity": value["sensitivity"],
        "isAllDay": ev.is_all_day,
        "isCancelled": False,
        "isOrganizer": organizer_address.lower() == owner_address.lower(),
        "responseRequested": True,
        "seriesMasterId": shown_id(ev.id, ev, None, immutable) if inst.original is not None else None,
        "showAs": value["show_as"],
        "type": kind,
        "webLink": f"https://outlook.office365.com/owa/?itemid={item_id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {"response": "organizer", "time": _NULL_TIME},
        "body": dict(value["body"]),
        "start": _when(inst.start, ev.is_all_day, ev.start_zone, tz_name),
        "end": _when(inst.end, ev.is_all_day, ev.end_zone, tz_name),
        "location": dict(value["location"]),
        "locations": [dict(value["location"])] if value["location"].get("displayName") else [],
        "recurrence": ev.recurrence.to_graph() if ev.recurrence and inst.original is None else None,
        "attendees": [dict(a) for a in value["attendees"]],
        "organizer": dict(ev.organizer),
        "onlineMeeting": None,
    }
    if ev.transaction_id is None:
        del doc["transactionId"]  # "only returned in a response payload if an app has set it"
    if extended:
        props = [{"id": pid, "value": val} for pid, val in ev.extended if _norm_prop_id(pid) in extended]
        if props:
            doc["singleValueExtendedProperties"] = props
    if select:
        keep = {s.lower() for s in select} | {"id", "@odata.etag"}
        if extended:
            keep.add("singlevalueextendedproperties")
        doc = {k: v for k, v in doc.items() if k.lower() in keep}
    return doc


def parse_select(raw: str | None) -> set[str] | None:
    if not raw:
        return None
    return {s.strip() for s in raw.split(",") if s.strip()}


_EXPAND = re.compile(r"^\s*singleValueExtendedProperties\s*\(\s*\$filter\s*=\s*(.+)\)\s*$", re.IGNORECASE)
_ID_EQ = re.compile(r"\s*id\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def parse_expand(raw: str | None) -> set[str] | None:
    """`$expand=singleValueExtendedProperties($filter=id eq '...' [or id eq '...'])` -> normalized ids.

    Graph returns extended properties only when expanded like this, never by default."""
    if not raw:
        return None
    match = _EXPAND.match(raw)
    if not match:
        raise bad_request(f"Parsing OData Select and Expand failed: '{raw}' is not supported.",
                          "BadRequest")
    ids = set()
    for clause in re.split(r"\s+or\s+", match.group(1), flags=re.IGNORECASE):
        m = _ID_EQ.fullmatch(clause)
        if not m:
            raise bad_request(f"Invalid filter clause in $expand: '{clause}'.", "BadRequest")
        ids.add(_norm_prop_id(m.group(1).replace("''", "'")))
    return ids


_ANY = re.compile(
    r"^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'((?:[^']|'')*)'\s+and\s+\1/value\s+eq\s+"
    r"'((?:[^']|'')*)'\s*\)\s*$",
    re.IGNORECASE,
)
_FIELD_EQ = re.compile(r"^\s*(iCalUId|subject)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_TRANSACTION_ID = re.compile(r"\btransactionId\b", re.IGNORECASE)


def _filter_prop_id(prop_id: str) -> str:
    """How an extended property's id compares in a filter: the type and GUID in any case, the string name exactly
    ("Filtering the string name (Name) in the id of an extended property is case-sensitive",
    https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get)."""
    parts = " ".join(prop_id.split()).split(" ", 3)
    if len(parts) == 4 and parts[2].lower() == "name":
        return " ".join((parts[0].lower(), parts[1].lower(), "name", parts[3]))
    return " ".join(parts).lower()


def parse_filter(raw: str | None) -> Callable[[Event], bool] | None:
    """The `$filter`s a sync client uses to find its own events again: by extended property, iCalUId, subject."""
    if not raw:
        return None
    m = _ANY.match(raw)
    if m:
        # "Filtering the value property of an extended property is case-insensitive" (same page as above): a
        # client must compare what it finds with what it looks for.
        pid, value = _filter_prop_id(m.group(2).replace("''", "'")), m.group(3).replace("''", "'").casefold()
        return lambda ev: any(_filter_prop_id(p) == pid and v.casefold() == value for p, v in ev.extended)
    if _TRANSACTION_ID.search(raw):
        # transactionId is not documented as filterable (https://learn.microsoft.com/graph/api/resources/event
        # lists it for idempotent creates only), and Graph has been reported to refuse such a filter this way.
        raise bad_request("The property 'TransactionId' does not support filtering.", "ErrorInvalidProperty")
    m = _FIELD_EQ.match(raw)
    if m:
        field, value = m.group(1).lower(), m.group(2).replace("''", "'")
        attr = {"icaluid": "ical_uid", "subject": "subject"}[field]
        return lambda ev: getattr(ev, attr) == value
    raise bad_request(f"The simulator does not support the filter '{raw}'.", "ErrorInvalidUrlQueryFilter")
