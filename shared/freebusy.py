"""Free/busy for the scheduler: busy intervals of a user's free/busy calendar over a window.

Read through `calendarView`, which expands recurring series into occurrences (a weekly meeting blocks every
week), following every page; a page that cannot be read fails the whole answer rather than silently dropping
busy time. All-day events come back as bare midnight dates whatever zone is asked for, so they are placed in
their own zone (shared/timezones.py) rather than read as UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from shared import validation
from shared.connections import ConnectionAccess
from shared.errors import ValidationFailed
from shared.graph.client import GraphClient, Mailbox, TokenSource
from shared.timezones import event_times

MAX_WINDOW = timedelta(days=62)  # as Graph's getSchedule; calendarView pages make longer windows expensive
BUSY_STATES = {"busy": "busy", "tentative": "tentative", "oof": "out_of_office",
               "workingElsewhere": "working_elsewhere"}


class FreeBusyService:
    def __init__(self, access: ConnectionAccess, graph: GraphClient) -> None:
        self._access = access
        self._graph = graph

    def busy(self, system: str, subject_id: str, start: str | None, end: str | None) -> dict[str, Any]:
        connection = self._access.require(system, "user", subject_id)
        window_start, window_end = _window(start, end)
        own = not connection.sync_resource or connection.sync_resource == connection.account_username.lower()
        mailbox = Mailbox(None if own else connection.sync_resource)
        calendar = connection.freebusy_calendar_id
        path = (f"{mailbox.path}/calendars/{quote(calendar, safe='')}/calendarView" if calendar
                else f"{mailbox.path}/calendarView")

        def read(token: TokenSource) -> list[dict[str, Any]]:
            params = {"startDateTime": window_start.isoformat(), "endDateTime": window_end.isoformat(),
                      "$select": "start,end,showAs,isAllDay,type,originalStartTimeZone", "$top": "200"}
            headers = {"Prefer": 'outlook.timezone="UTC"'}
            events: list[dict[str, Any]] = []
            page = self._graph.request(token, "GET", path, params=params, headers=headers)
            while True:
                events.extend(page.get("value", []))
                next_link = page.get("@odata.nextLink")
                if not next_link:
                    return events
                page = self._graph.request(token, "GET", next_link, headers=headers)

        events = self._access.run(connection, read)
        intervals = sorted(
            ({"start": t.start_utc.isoformat(), "end": t.end_utc.isoformat(),
              "status": BUSY_STATES[e.get("showAs", "busy")]}
             for e, t in ((e, event_times(e)) for e in events)
             if t is not None and e.get("showAs", "busy") in BUSY_STATES),
            key=lambda i: (i["start"], i["end"]))
        return {"id": subject_id, "calendar_id": calendar, "start": window_start.isoformat(),
                "end": window_end.isoformat(), "busy": intervals}


def _window(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    if not start or not end:
        raise ValidationFailed("start" if not start else "end", "is required: an ISO date-time with offset")
    window_start = validation.day_or_datetime(start, "start")
    window_end = validation.day_or_datetime(end, "end")
    if len(start) == 10:  # a bare date means from the start of that day
        window_start = window_start.replace(hour=0, minute=0, second=0)
    if window_end <= window_start:
        raise ValidationFailed("end", "must be after start")
    if window_end - window_start > MAX_WINDOW:
        raise ValidationFailed("end", "the window may span at most 62 days")
    return window_start, window_end

