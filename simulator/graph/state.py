"""The Graph side's state (`sim.graph`) and the operations both the HTTP API and the control API perform.

Control operations exist so tests and benchmarks can act "in Outlook" (a receptionist books a room in Outlook, a
user drags a meeting, an event is deleted) without a token, and then watch the app discover it through delta.
They go through the same write path as Graph requests, so they appear in the change log like any other write.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from simulator.core import Simulator
from simulator.counters import Counters
from simulator.directory import User
from simulator.faults import FaultInjector
from simulator.graph.errors import GraphError, invalid_user, item_not_found
from simulator.graph.events import apply_patch, build_event, fingerprint, patch_occurrence, resolve, serialize
from simulator.graph.store import Calendar, Event, Instance, Store, shown_id
from simulator.throttle import Throttle

PREFIX = "graph"


class GraphState:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.store = Store()
        self.throttle = Throttle(sim.clock, sim.counters, PREFIX)
        self.faults = FaultInjector()
        from simulator.graph.delta import WindowCache  # local: delta imports this module's types

        self.window_cache = WindowCache()
        from simulator.graph.subscriptions import Subscriptions  # local: it imports this module's types

        self.subscriptions = Subscriptions(self)

    def close(self) -> None:
        """Stop delivering change notifications (the server installs another Simulator, or a test ends)."""
        self.subscriptions.close()

    @property
    def counters(self) -> Counters:
        return self.sim.counters

    # --- shared write path ------------------------------------------------------------------------------------

    def user(self, who: str) -> User:
        found = self.sim.directory.find_user(who)
        if found is None:
            raise invalid_user(who)
        return found

    def calendar(self, mailbox: User, calendar_id: str | None) -> Calendar:
        cal = self.store.calendar(mailbox.id, calendar_id)
        if cal is None:
            raise item_not_found()
        return cal

    def create(self, mailbox: User, cal: Calendar, body: dict[str, Any], organizer: User, *,
               dedup: bool = True) -> tuple[Event, bool]:
        """Create an event, honouring `transactionId`: a replay of the same create answers the event it made
        (no duplicate); the same transactionId with a different body is refused as Outlook does. `dedup=False`
        (the "duplicate_transaction" fault) accepts it as a new event regardless. Answers (event, created)."""
        tid = body.get("transactionId") or None
        with self.store.lock:
            box = self.store.mailbox(mailbox.id)
            if dedup and isinstance(tid, str) and tid in box.transactions:
                event_id, printed = box.transactions[tid]
                existing = self.store.event(event_id)
                if existing is not None:
                    if printed == fingerprint(body):
                        return existing, False
                    raise GraphError(
                        400,
                        "ErrorDuplicateTransactionId",
                        "Your request can't be completed. The TransactionId specified in the request has already "
                        "been used to create a different event.",
                    )
            event = build_event(body, mailbox=mailbox, calendar_id=cal.id, organizer=organizer,
                                now=self.sim.clock.now())
            self.store.insert(event)
            if isinstance(tid, str):
                box.transactions[tid] = (event.id, fingerprint(body))
            return event, True

    def update(self, mailbox: User, item_id: str, body: dict[str, Any], calendar_id: str | None = None, *,
               immutable: bool = False) -> Instance:
        """PATCH an event, a series master, or one occurrence (which becomes an exception)."""
        with self.store.lock:
            inst = resolve(self.store, mailbox.id, item_id, calendar_id, immutable=immutable)
            now = self.sim.clock.now()
            if inst.original is None:
                updated = apply_patch(inst.event, body, now)
                self.store.replace(updated)
                return dataclasses.replace(inst, event=updated, start=updated.start, end=updated.end)
            master = patch_occurrence(inst.event, inst, body, now)
            self.store.replace(master)
            return resolve(self.store, mailbox.id, item_id, calendar_id, immutable=immutable)

    def delete(self, mailbox: User, item_id: str, calendar_id: str | None = None, *, immutable: bool = False) -> None:
        """Delete an event or series; deleting an occurrence cancels just that date of its series."""
        with self.store.lock:
            inst = resolve(self.store, mailbox.id, item_id, calendar_id, immutable=immutable)
            if inst.original is None:
                self.store.remove(inst.event.id)
                return
            master = inst.event
            exceptions = {d: o for d, o in master.exceptions.items() if d != inst.original}
            self.store.replace(dataclasses.replace(
                master, cancelled=master.cancelled | {inst.original}, exceptions=exceptions,
                modified=self.sim.clock.now(),
            ))

    # --- control API ------------------------------------------------------------------------------------------

    def create_event(self, mailbox: str, event: dict[str, Any], *, as_user: str | None = None,
                     calendar_id: str | None = None) -> dict[str, Any]:
        """Create an event "in Outlook" in a mailbox calendar, organized by `as_user` (default: the owner)."""
        box = self.user(mailbox)
        organizer = self.user(as_user) if as_user else box
        event_obj, _ = self.create(box, self.calendar(box, calendar_id), event, organizer)
        self.counters.incr(f"{PREFIX}.control.event.create")
        return self._raw(box, Instance(event_obj, event_obj.id, event_obj.start, event_obj.end))

    def update_event(self, event_id: str, changes: dict[str, Any], *, as_user: str | None = None) -> dict[str, Any]:
        """Change an event "in Outlook" (e.g. move it out of a synced window); `as_user` is informational."""
        box, immutable = self._owner_of(event_id)
        if as_user:
            self.user(as_user)
        inst = self.update(box, event_id, changes, immutable=immutable)
        self.counters.incr(f"{PREFIX}.control.event.update")
        return self._raw(box, inst)

    def delete_event(self, event_id: str, *, as_user: str | None = None) -> None:
        box, immutable = self._owner_of(event_id)
        if as_user:
            self.user(as_user)
        self.delete(box, event_id, immutable=immutable)
        self.counters.incr(f"{PREFIX}.control.event.delete")

    def move_event(self, event_id: str, calendar_id: str) -> dict[str, Any]:
        """A user moves an event to another calendar of its mailbox in Outlook (Graph itself has no move for
        events): its default ID changes, its immutable ID does not."""
        box, immutable = self._owner_of(event_id)
        with self.store.lock:
            inst = resolve(self.store, box.id, event_id, immutable=immutable)
            if inst.original is not None:
                raise ValueError("move the series, not one of its occurrences")
            target = self.store.calendar(box.id, calendar_id)
            if target is None:
                raise ValueError(f"the mailbox {box.address} has no calendar {calendar_id}")
            if target.id == inst.event.calendar_id:
                raise ValueError("the event is already in that calendar")
            moved = self.store.move(inst.event.id, target.id, self.sim.clock.now())
        self.counters.incr(f"{PREFIX}.control.event.move")
        return self._raw(box, Instance(moved, moved.id, moved.start, moved.end))

    def create_calendar(self, mailbox: str, name: str) -> dict[str, Any]:
        box = self.user(mailbox)
        if not name.strip():
            raise ValueError("a calendar needs a name")
        cal = self.store.add_calendar(box.id, name.strip())
        return {"id": cal.id, "name": cal.name, "isDefaultCalendar": cal.is_default, "mailbox": box.address}

    def calendars(self, mailbox: str) -> list[dict[str, Any]]:
        box = self.user(mailbox)
        with self.store.lock:
            cals = list(self.store.mailbox(box.id).calendars.values())
        return [{"id": c.id, "name": c.name, "isDefaultCalendar": c.is_default, "events": len(c.events)}
                for c in cals]

    def list_events(self, mailbox: str, calendar_id: str | None = None) -> list[dict[str, Any]]:
        """The stored events (singles and series masters) of a calendar, in UTC, for test assertions."""
        box = self.user(mailbox)
        with self.store.lock:
            events = list(self.calendar(box, calendar_id).events.values())
        all_ids = {_norm(pid) for ev in events for pid, _ in ev.extended}
        return [self._raw(box, Instance(ev, ev.id, ev.start, ev.end), all_ids) for ev in events]

    def set_latency(self, fixed_ms: float = 0.0, jitter_ms: float = 0.0, *, mailbox: str | None = None,
                    seed: int | None = None) -> None:
        self.throttle.set_latency(fixed_ms, jitter_ms, mailbox=mailbox, seed=seed)

    def set_throttling(self, *, concurrency: int | None = None, budget: int | None = None,
                       window_seconds: float | None = None, concurrency_retry_after: int | None = None,
                       enabled: bool | None = None) -> dict[str, Any]:
        return vars(self.throttle.configure(concurrency=concurrency, budget=budget, window_seconds=window_seconds,
                                            concurrency_retry_after=concurrency_retry_after, enabled=enabled))

    def add_fault(self, kind: str, *, probability: float | None = None, count: int | None = None,
                  method: str | None = None, path_contains: str | None = None, retry_after: int | None = None,
                  seed: int | None = None) -> dict[str, Any]:
        if seed is not None:
            self.faults.seed(seed)
        rule = self.faults.add(kind, probability=probability, count=count, method=method,
                               path_contains=path_contains, retry_after=retry_after)
        return dataclasses.asdict(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    def invalidate_delta(self, mailbox: str | None = None) -> int:
        """Make delta tokens answer 410 (one mailbox or all), as when Exchange drops its sync state."""
        user_id = self.user(mailbox).id if mailbox else None
        return self.store.invalidate_delta(user_id)

    def counter_snapshot(self) -> dict[str, Any]:
        snap = self.counters.snapshot()
        mine = {
            section: {k: v for k, v in values.items() if k.startswith(PREFIX + ".")}  # type: ignore[union-attr]
            for section, values in snap.items()
        }
        mine["events_per_calendar"] = self._events_per_calendar()
        mine["throttle"] = self.throttle.snapshot()
        return mine

    def reset_counters(self) -> None:
        """Zero the `graph.*` counters (other sides' counters are left alone) and the throttle's peaks."""
        self.counters.reset(prefix=PREFIX + ".")
        self.throttle.reset()

    # --- helpers ----------------------------------------------------------------------------------------------

    def _owner_of(self, event_id: str) -> tuple[User, bool]:
        """The mailbox of an event named by either ID format (the control API acts as Outlook, not as a Graph
        client), and whether the ID given was the immutable one."""
        from simulator.graph.store import parse_occurrence_id

        parsed = parse_occurrence_id(event_id)
        key = parsed[0] if parsed else event_id
        immutable = self.store.lookup(key, True) is not None
        event = self.store.lookup(key, immutable)
        if event is None:
            raise item_not_found()
        owner = self.sim.directory.users.get(event.mailbox_id)
        if owner is None:
            raise item_not_found()
        return owner, immutable

    def _raw(self, box: User, inst: Instance, extended: set[str] | None = None) -> dict[str, Any]:
        """An event as the control API shows it: `id` is the immutable ID (what the product stores, since it sends
        `Prefer: IdType="ImmutableId"`), `defaultId` what a client without that header sees now."""
        ids = extended if extended is not None else {_norm(pid) for pid, _ in inst.event.extended}
        doc = serialize(inst, "UTC", box.address, extended=ids, immutable=True)
        doc["defaultId"] = shown_id(inst.id, inst.event, inst.original, False)
        doc["calendarId"] = inst.event.calendar_id
        doc["mailbox"] = box.address
        return doc

    def _events_per_calendar(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.store.lock:
            for box in self.store.mailboxes.values():
                owner = self.sim.directory.users.get(box.user_id)
                label = owner.address if owner else box.user_id
                for cal in box.calendars.values():
                    out[f"{label}/{cal.name}"] = len(cal.events)
        return out


def _norm(prop_id: str) -> str:
    return " ".join(prop_id.split()).lower()


def attach_graph(sim: Simulator) -> GraphState:
    """The Graph state of this simulator, created on first use (the server and tests may both call this)."""
    if sim.graph is None:
        sim.graph = GraphState(sim)
    return sim.graph
