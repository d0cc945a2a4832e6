"""What a route handler gets: the request, the authenticated caller, and the mailbox/calendar the path names."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from simulator.directory import User
from simulator.graph.auth import Access, Caller
from simulator.graph.http import GraphRequest, Prefer
from simulator.graph.store import Calendar

if TYPE_CHECKING:
    from simulator.graph.state import GraphState


@dataclass
class Ctx:
    state: GraphState
    request: GraphRequest
    caller: Caller
    mailbox: User
    access: Access | None
    calendar_id: str | None  # explicit /calendars/{id}; None = the default calendar (or any, for item IDs)
    calendar_named: bool  # True when the path names a calendar (/calendars/{id} or /calendar)
    item_id: str | None = None
    fault: str | None = None  # an injected fault the handler acts out (e.g. "duplicate_transaction")

    @cached_property
    def prefer(self) -> Prefer:
        return self.request.prefer()

    @property
    def tz(self) -> str:
        """The zone responses are written in: the `Prefer: outlook.timezone` one, else UTC."""
        return self.prefer.time_zone or "UTC"

    @property
    def immutable(self) -> bool:
        """Whether event IDs in this request (path and answer) are immutable IDs rather than default IDs."""
        return self.prefer.immutable_ids

    def calendar(self) -> Calendar:
        return self.state.calendar(self.mailbox, self.calendar_id)

    @property
    def item_calendar(self) -> str | None:
        """The calendar an item ID must live in: the named one, or None (any calendar of the mailbox)."""
        return self.calendar().id if self.calendar_named else None
