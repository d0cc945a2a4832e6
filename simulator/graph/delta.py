"""calendarView delta: what changed in a calendar's fixed window since the last round.

As Graph documents ("Get incremental changes to events in a calendar view", "event: delta"): the first request
fixes startDateTime/endDateTime, which are baked into the opaque `$skiptoken` / `$deltatoken` (moving the window
means a new baseline); `$select`, `$filter`, `$orderby`, `$search` and `$expand` are refused; `Prefer:
odata.maxpagesize` and `Prefer: outlook.timezone` apply; removed items come as `{"id", "@removed": {"reason":
"deleted"}}`, including events that moved out of the window; series appear as their occurrences; an invalidated
token answers 410 `syncStateNotFound` with a `Location` to start over.

Tokens carry (calendar, window, epoch, sequence numbers, last key returned) and nothing else: an incremental
round reads only the change-log entries after its sequence number, so its cost follows the number of changes.
Pages use the item ID as a keyset cursor, so a write between two pages can neither shift nor hide an item; the
write is also after the round's baseline sequence and comes again in the next round (Graph allows replays).
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from simulator.graph.calendarview import window
from simulator.graph.context import Ctx
from simulator.graph.errors import GraphError, bad_request
from simulator.graph.events import serialize
from simulator.graph.http import GraphResponse, link
from simulator.graph.store import Calendar, Event, Instance, instances, shown_id
from simulator.graph.timezones import parse_instant

DEFAULT_PAGE = 10
_UNSUPPORTED = ("$select", "$filter", "$orderby", "$search", "$expand")
_ODATA_TYPE = "#microsoft.graph.event"


class WindowCache:
    """Sorted instances of (calendar, window) as of the calendar's last write: a paged initial sync of a large
    calendar expands it once, not once per page."""

    def __init__(self, size: int = 2048) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._items: OrderedDict[tuple[object, ...], tuple[list[str], list[Instance]]] = OrderedDict()

    def get(self, cal: Calendar, start: datetime, end: datetime, lock: threading.RLock) -> tuple[list[str],
                                                                                                list[Instance]]:
        with lock:
            key = (cal.id, cal.epoch, cal.log_seq[-1] if cal.log_seq else 0, start, end)
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return hit
            found = sorted((i for ev in cal.events.values() for i in instances(ev, start, end)), key=lambda i: i.id)
        value = ([i.id for i in found], found)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
        if not isinstance(state, dict) or not {"cal", "ep", "s", "e"} <= state.keys():
            raise ValueError
        return state
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The delta or skip token is not valid.", "ErrorInvalidSyncStateData") from None


def _removed(item_id: str) -> dict[str, Any]:
    return {"@odata.type": _ODATA_TYPE, "id": item_id, "@removed": {"reason": "deleted"}}


def delta(ctx: Ctx) -> GraphResponse:
    req = ctx.request
    for name in _UNSUPPORTED:
        if req.param(name) is not None:
            raise bad_request(
                "The following parameters are not supported with change tracking over the 'CalendarView' "
                f"resource: '{', '.join(_UNSUPPORTED)}'.",
                "ErrorInvalidUrlQuery",
            )
    counters = ctx.state.counters
    cal = ctx.calendar()
    store = ctx.state.store
    skip_token, delta_token = req.param("$skiptoken"), req.param("$deltatoken")
    if skip_token:
        state = _decode(skip_token)
    elif delta_token:
        previous = _decode(delta_token)
        with store.lock:
            state = {**previous, "from": previous["seq"], "to": store.seq, "after": ""}
        counters.incr("graph.delta.incremental")
    else:
        start, end = window(ctx)
        with store.lock:
            state = {"cal": cal.id, "ep": cal.epoch, "s": start.isoformat(), "e": end.isoformat(),
                     "from": None, "to": store.seq, "after": ""}
        counters.incr("graph.delta.initial")
    if state["cal"] != cal.id:
        raise bad_request("The delta token belongs to another calendar.", "ErrorInvalidSyncStateData")
    start, end = parse_instant(state["s"]), parse_instant(state["e"])
    if state["ep"] != cal.epoch:
        counters.incr("graph.delta.gone")
        restart = link(req.base_url, req.path, {"startDateTime": state["s"], "endDateTime": state["e"],
                                                "$deltatoken": ""})
        raise GraphError(410, "syncStateNotFound",
                         "The sync state generation is not found. The delta token is expired and data must be "
                         "synchronized again.", {"Location": restart})

    size = ctx.prefer.max_page_size or DEFAULT_PAGE
    immutable = ctx.immutable
    if state["from"] is None:
        keys, found = ctx.state.window_cache.get(cal, start, end, store.lock)
        at = bisect.bisect_right(keys, state["after"]) if state["after"] else 0
        page_items: list[tuple[str, Instance, bool]] = [(i.id, i, False) for i in found[at: at + size + 1]]
    else:
        page_items = _changes(ctx, cal, state, start, end, size + 1)
    more = len(page_items) > size
    page_items = page_items[:size]
    value = [
        _removed(shown_id(inst.id, inst.event, inst.original, immutable)) if gone else
        {"@odata.type": _ODATA_TYPE, **serialize(inst, ctx.tz, ctx.mailbox.address, immutable=immutable)}
        for _, inst, gone in page_items
    ]
    counters.incr("graph.delta.items", len(value))
    body: dict[str, Any] = {"@odata.context": f"{req.base_url}/$metadata#Collection(event)"}
    base = {k: state[k] for k in ("cal", "ep", "s", "e")}
    if more:
        token = _encode({**base, "from": state["from"], "to": state["to"], "after": page_items[-1][0]})
        body["@odata.nextLink"] = link(req.base_url, req.path, {"$skiptoken": token})
    else:
        body["@odata.deltaLink"] = link(req.base_url, req.path, {"$deltatoken": _encode({**base, "seq": state["to"]})})
    body["value"] = value
    return GraphResponse(200, body, ctx.prefer.applied())


def _changes(ctx: Ctx, cal: Calendar, state: dict[str, Any], start: datetime, end: datetime,
             limit: int) -> list[tuple[str, Instance, bool]]:
    """The round's items after the cursor, keyed by the ID the client sees: current instances of changed events
    in the window, and `@removed` (True) for instances that were in the window at the round's baseline and are
    not any more. An event moved away and back has a new default ID, so a client using default IDs sees the old
    one removed and a new one appear; with immutable IDs it sees one update."""
    immutable = ctx.immutable
    with ctx.state.store.lock:
        before = cal.changes_between(state["from"], state["to"])
        current: dict[str, Event | None] = {event_id: cal.events.get(event_id) for event_id in before}
    items: dict[str, tuple[Instance, bool]] = {}
    for event_id, prior in before.items():
        now_event = current[event_id]
        fresh = {shown_id(i.id, i.event, i.original, immutable): i
                 for i in (instances(now_event, start, end) if now_event else ())}
        items.update((k, (i, False)) for k, i in fresh.items())
        if prior is not None:
            for old in instances(prior, start, end):
                key = shown_id(old.id, old.event, old.original, immutable)
                if key not in fresh:
                    items[key] = (old, True)
    after = state["after"]
    keys = sorted(k for k in items if k > after)[:limit]
    return [(k, *items[k]) for k in keys]
