"""calendarView, event lists and series instances, paged the way Graph pages them.

calendarView is how availability must be read: it expands series into occurrences (a weekly meeting is busy every
week, not only at its first date). Pages hold 10 items unless `$top` or `Prefer: odata.maxpagesize` says
otherwise, and `@odata.nextLink` carries `$skip`, so clients that stop at the first page are caught.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from simulator.graph.context import Ctx
from simulator.graph.errors import GraphError, bad_request, invalid_parameter
from simulator.graph.events import parse_expand, parse_filter, parse_select, resolve, serialize
from simulator.graph.http import GraphResponse, link
from simulator.graph.store import Event, Instance, instances
from simulator.graph.timezones import parse_instant

DEFAULT_PAGE = 10
MAX_TOP = 1000
MIN_YEAR, MAX_YEAR = 1601, 4500  # Exchange's own date range; keeps window arithmetic far from datetime's limits
_WINDOW_MESSAGE = ("This request requires a time window specified by the query string parameters StartDateTime and "
                   "EndDateTime.")


def window(ctx: Ctx) -> tuple[datetime, datetime]:
    """startDateTime/endDateTime: required; an offset in the value is honoured, none means UTC (the
    `Prefer: outlook.timezone` header does not change how they are read)."""
    raw_start, raw_end = ctx.request.param("startDateTime"), ctx.request.param("endDateTime")
    if not raw_start or not raw_end:
        raise invalid_parameter(_WINDOW_MESSAGE)
    try:
        start, end = parse_instant(raw_start), parse_instant(raw_end)
    except ValueError:
        raise invalid_parameter(_WINDOW_MESSAGE) from None
    if end <= start:
        raise invalid_parameter("The parameter 'EndDateTime' must be later than 'StartDateTime'.")
    if start.year < MIN_YEAR or end.year > MAX_YEAR:
        raise invalid_parameter(f"The time window must lie between the years {MIN_YEAR} and {MAX_YEAR}.")
    return start, end


def _int_param(ctx: Ctx, name: str, default: int) -> int:
    raw = ctx.request.param(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise bad_request(f"Invalid value '{raw}' for query parameter '{name}'.", "ErrorInvalidUrlQuery")
    return int(raw)


def _page(ctx: Ctx, found: list[Instance], context: str) -> GraphResponse:
    """One page of `found` (serialized page only: a 300-event view read 10 at a time stays cheap)."""
    req = ctx.request
    top = _int_param(ctx, "$top", 0)
    skip = _int_param(ctx, "$skip", 0)
    size = min(top or ctx.prefer.max_page_size or DEFAULT_PAGE, MAX_TOP)
    body: dict[str, Any] = {"@odata.context": context, "value": _docs(ctx, found[skip: skip + size])}
    if skip + size < len(found):
        params = {k: v for k, v in req.query.items() if k.lower() not in ("$skip", "$top")}
        params["$top"] = str(size)
        params["$skip"] = str(skip + size)
        body["@odata.nextLink"] = link(req.base_url, req.path, params)
    return GraphResponse(200, body, ctx.prefer.applied())


def _sort_key(inst: Instance) -> tuple[datetime, str]:
    return inst.start, inst.id


def calendar_view(ctx: Ctx) -> GraphResponse:
    start, end = window(ctx)
    if ctx.request.param("$filter"):
        raise bad_request("The simulator does not support $filter on calendarView.", "ErrorInvalidUrlQueryFilter")
    cal = ctx.calendar()
    with ctx.state.store.lock:
        events = list(cal.events.values())
    found = sorted((i for ev in events for i in instances(ev, start, end)), key=_sort_key)
    if (ctx.request.param("$orderby") or "").lower().endswith(" desc"):
        found.reverse()
    return _page(ctx, found, f"{ctx.request.base_url}/$metadata#users('{ctx.mailbox.id}')/calendarView")


def _docs(ctx: Ctx, found: list[Instance]) -> list[dict[str, Any]]:
    select = parse_select(ctx.request.param("$select"))
    extended = parse_expand(ctx.request.param("$expand"))
    return [serialize(i, ctx.tz, ctx.mailbox.address, select=select, extended=extended, immutable=ctx.immutable)
            for i in found]


_ORDER = {
    "start/datetime": lambda ev: (ev.start, ev.id),
    "end/datetime": lambda ev: (ev.end, ev.id),
    "createddatetime": lambda ev: (ev.created, ev.id),
    "lastmodifieddatetime": lambda ev: (ev.modified, ev.id),
    "subject": lambda ev: (ev.subject, ev.id),
}


def list_events(ctx: Ctx) -> GraphResponse:
    """/events: single events and series masters (not occurrences), optionally filtered."""
    match = parse_filter(ctx.request.param("$filter"))
    with ctx.state.store.lock:
        if ctx.calendar_named:
            events = list(ctx.calendar().events.values())
        else:
            box = ctx.state.store.mailbox(ctx.mailbox.id)
            events = [ev for cal in box.calendars.values() for ev in cal.events.values()]
    if match is not None:
        events = [ev for ev in events if match(ev)]
    order = (ctx.request.param("$orderby") or "createdDateTime").strip()
    name, _, direction = order.partition(" ")
    key = _ORDER.get(name.lower())
    if key is None:
        raise bad_request(f"The simulator cannot order events by '{order}'.", "ErrorInvalidUrlQuery")
    events.sort(key=key, reverse=direction.strip().lower() == "desc")  # type: ignore[arg-type]
    found = [Instance(ev, ev.id, ev.start, ev.end) for ev in events]
    return _page(ctx, found, f"{ctx.request.base_url}/$metadata#users('{ctx.mailbox.id}')/events")


def list_instances(ctx: Ctx) -> GraphResponse:
    """/events/{id}/instances: the occurrences (and exceptions) of a series within a window."""
    assert ctx.item_id is not None  # nosec B101 - an invariant the caller guarantees
    start, end = window(ctx)
    inst = resolve(ctx.state.store, ctx.mailbox.id, ctx.item_id, ctx.item_calendar, immutable=ctx.immutable)
    master: Event = inst.event
    if inst.original is not None:
        raise GraphError(400, "ErrorInvalidRequest", "The event is not a series master.")
    found = sorted(instances(master, start, end), key=_sort_key)
    return _page(ctx, found, f"{ctx.request.base_url}/$metadata#users('{ctx.mailbox.id}')/events")
