"""calendar: getSchedule, the free/busy read the product's scheduler uses.

Limits from "Get free/busy schedule of Outlook calendar users and resources": at most 20 schedules per request,
a period of less than 62 days, `availabilityViewInterval` 5 to 1440 minutes (default 30, "calendar: getSchedule").
A schedule that cannot be read comes back as an item with an `error`, not as a failed request, which is exactly
the case a client that treats "no items" as "free" gets wrong.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from simulator.directory import User
from simulator.graph.auth import can_see_details
from simulator.graph.context import Ctx
from simulator.graph.errors import invalid_parameter
from simulator.graph.http import GraphResponse
from simulator.graph.store import instances
from simulator.graph.timezones import from_graph, to_graph

MAX_SCHEDULES = 20
MAX_WINDOW = timedelta(days=62)
_CODES = {"free": "0", "workingElsewhere": "0", "unknown": "0", "tentative": "1", "busy": "2", "oof": "3"}


def get_schedule(ctx: Ctx) -> GraphResponse:
    body = {k.lower(): v for k, v in ctx.request.json().items()}  # the docs' own example uses PascalCase names
    schedules = body.get("schedules")
    if not isinstance(schedules, list) or not schedules or not all(isinstance(s, str) for s in schedules):
        raise invalid_parameter("'schedules' must be a non-empty collection of SMTP addresses.")
    if len(schedules) > MAX_SCHEDULES:
        raise invalid_parameter(f"The number of schedules requested exceeds the limit of {MAX_SCHEDULES}.")
    if "starttime" not in body or "endtime" not in body:
        raise invalid_parameter("'startTime' and 'endTime' are required.")
    start, _ = from_graph(body["starttime"], "startTime")
    end, _ = from_graph(body["endtime"], "endTime")
    if end <= start:
        raise invalid_parameter("'endTime' must be later than 'startTime'.")
    if end - start >= MAX_WINDOW:
        raise invalid_parameter("The requested time period must be less than 62 days.")
    raw_interval = body.get("availabilityviewinterval", 30)
    try:
        interval = int(raw_interval if raw_interval is not None else 30)
    except (TypeError, ValueError):
        raise invalid_parameter("'availabilityViewInterval' must be an integer.") from None
    if not 5 <= interval <= 1440:
        raise invalid_parameter("'availabilityViewInterval' must be between 5 and 1440 minutes.")
    values = [_schedule(ctx, address, start, end, interval) for address in schedules]
    return GraphResponse(200, {
        "@odata.context": f"{ctx.request.base_url}/$metadata#Collection(microsoft.graph.scheduleInformation)",
        "value": values,
    }, ctx.prefer.applied())


def _schedule(ctx: Ctx, address: str, start: Any, end: Any, interval: int) -> dict[str, Any]:
    sim = ctx.state.sim
    user = sim.directory.find_user(address)
    if user is None or user.tenant_id != ctx.caller.grant.tenant_id:
        return {
            "scheduleId": address,
            "availabilityView": "",
            "scheduleItems": [],
            "error": {"message": f"The user or resource '{address}' could not be found.",
                      "responseCode": "ErrorMailRecipientNotFound"},
        }
    details = can_see_details(sim, ctx.caller, user)
    store = ctx.state.store
    with store.lock:
        cal = store.calendar(user.id, None)
        events = list(cal.events.values()) if cal else []
    found = sorted((i for ev in events for i in instances(ev, start, end)), key=lambda i: (i.start, i.id))
    slots = math.ceil((end - start) / timedelta(minutes=interval))
    view = ["0"] * slots
    items = []
    for inst in found:
        overrides = inst.overrides or {}
        status = overrides.get("show_as", inst.event.show_as)
        if status == "free":
            continue
        code = _CODES.get(status, "0")
        first = max(0, int((inst.start - start) / timedelta(minutes=interval)))
        last = min(slots, math.ceil((inst.end - start) / timedelta(minutes=interval)))
        for slot in range(first, min(slots, max(last, first + 1))):  # a zero-length item still marks its slot
            view[slot] = max(view[slot], code)
        item: dict[str, Any] = {
            "isPrivate": overrides.get("sensitivity", inst.event.sensitivity) == "private",
            "status": status,
            "start": to_graph(inst.start, ctx.tz),
            "end": to_graph(inst.end, ctx.tz),
        }
        if details and not item["isPrivate"]:
            item["subject"] = overrides.get("subject", inst.event.subject)
            item["location"] = overrides.get("location", inst.event.location).get("displayName", "")
        items.append(item)
    return {
        "scheduleId": address,
        "availabilityView": "".join(view),
        "scheduleItems": items,
        "workingHours": _working_hours(user),
    }


def _working_hours(_user: User) -> dict[str, Any]:
    return {
        "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
        "startTime": "08:00:00.0000000",
        "endTime": "17:00:00.0000000",
        "timeZone": {"name": "UTC"},
    }
