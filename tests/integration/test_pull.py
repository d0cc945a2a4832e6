"""Two-way sync: bookings made in Outlook on a room calendar come back through the feed; the product's own
events never do, but changes to them made in Outlook are reported."""

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.pull import PullBusy
from shared.runtime import build_services
from shared.settings import Settings
from tests.conftest import MASTER_KEY
from tests.helpers import configure, connect

SOON = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)


def slot(hours_from_soon, length=1):
    start = SOON + timedelta(hours=hours_from_soon)
    return start, start + timedelta(hours=length)


def outlook_event(subject, hours_from_soon, length=1, **extra):
    start, end = slot(hours_from_soon, length)
    return {"subject": subject, "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}, **extra}


def booking(hours_from_soon, key="o1"):
    start, end = slot(hours_from_soon)
    return {"patron": {"first_name": "Ada", "last_name": "Lovelace"},
            "occurrences": [{"key": key, "start": start.strftime("%Y-%m-%dT%H:%M:%S"),
                             "end": end.strftime("%Y-%m-%dT%H:%M:%S"), "time_zone": "UTC"}]}


class Room:
    def __init__(self, api, simulator, directory, system, services):
        self.api, self.simulator, self.directory, self.system, self.services = (
            api, simulator, directory, system, services)
        self.mailbox = directory.room
        self.cursor = "0"

    def pull(self):
        return self.services.pull.pull(self.system, "r1")

    def changes(self):
        """New feed entries since the last call."""
        body = self.api.get(f"/api/systems/{self.system}/connections/space/r1/external-events"
                            f"?cursor={self.cursor}").json()
        self.cursor = body["next_cursor"]
        return body["changes"]

    def book_in_outlook(self, subject, hours, as_user=None, **extra):
        return self.simulator.sim.graph.create_event(self.mailbox, outlook_event(subject, hours, **extra),
                                                     as_user=as_user or self.directory.other_staff)

    def export(self, item, hours):
        response = self.api.put(f"/api/systems/{self.system}/connections/space/r1/items/{item}",
                                json=booking(hours))
        assert response.status_code == 200, response.text
        return response.json()["occurrences"][0]["sync_id"]


@pytest.fixture
def room(api, simulator, directory, system, services):
    connect(api, simulator, system, "space", "r1", directory.staff)
    api.put(f"/api/systems/{system}/locations/main", json={"title_mode": "patron_name", "populate_creator": True})
    response = api.patch(f"/api/systems/{system}/connections/space/r1",
                         json={"sync_resource": directory.room, "two_way": True, "location": "main"})
    assert response.status_code == 200, response.text
    room = Room(api, simulator, directory, system, services)
    room.pull()  # the first baseline of an empty calendar
    return room


def test_an_outlook_booking_appears_within_one_pull_with_its_creator_and_no_echo(room):
    own = room.export("b1", 0)
    made = room.book_in_outlook("Board meeting", 4)
    assert room.pull()["published"] == 1
    (change,) = room.changes()
    assert change["type"] == "created" and change["event_id"] == made["id"]
    assert change["event"]["subject"] == "Board meeting"
    assert change["event"]["creator"] == {"name": "Ned Flanders", "email": room.directory.other_staff}
    assert change["event"]["conflict"] is False
    assert change["id"].endswith(f":{change['seq']}")  # a stable ID for de-duplication
    assert own != made["id"]
    assert room.pull()["published"] == 0 and room.changes() == []  # nothing twice


def test_moved_and_cancelled_outlook_bookings(room):
    made = room.book_in_outlook("Study group", 5)
    room.pull()
    room.changes()
    start, end = slot(7)
    room.simulator.sim.graph.update_event(made["id"], {"start": {"dateTime": start.isoformat()[:19],
                                                                 "timeZone": "UTC"},
                                                       "end": {"dateTime": end.isoformat()[:19], "timeZone": "UTC"}})
    room.pull()
    (moved,) = room.changes()
    assert moved["type"] == "updated" and moved["event"]["start"].startswith(start.isoformat()[:16])
    room.simulator.sim.graph.delete_event(made["id"])
    room.pull()
    (removed,) = room.changes()
    assert removed["type"] == "removed" and removed["event_id"] == made["id"]


def test_own_events_changed_or_deleted_in_outlook_are_reported_but_our_writes_are_not(room):
    first = room.export("b1", 0)
    second = room.export("b2", 2)
    room.pull()
    assert room.changes() == []  # our own exports never come back as external events
    room.api.put(f"/api/systems/{room.system}/connections/space/r1/items/b1", json={
        **booking(1), "patron": {"first_name": "Ada", "last_name": "Byron"}})
    room.pull()
    assert room.changes() == []  # our own update is an echo
    start, end = slot(9)
    room.simulator.sim.graph.update_event(second, {"start": {"dateTime": start.isoformat()[:19], "timeZone": "UTC"},
                                                   "end": {"dateTime": end.isoformat()[:19], "timeZone": "UTC"}})
    room.simulator.sim.graph.delete_event(first)
    room.pull()
    changes = {c["type"]: c for c in room.changes()}
    assert set(changes) == {"own_event_changed", "own_event_deleted"}
    assert changes["own_event_changed"]["event"]["item"] == "b2"
    assert changes["own_event_changed"]["event"]["start"].startswith(start.isoformat()[:16])
    assert changes["own_event_deleted"]["event"] == {"item": "b1", "occurrence": "o1"}
    room.pull()
    assert room.changes() == []


def test_an_outlook_booking_overlapping_a_host_booking_is_a_conflict(room):
    room.export("b1", 0)
    room.book_in_outlook("Double booked", 0)
    room.book_in_outlook("After", 3)
    room.pull()
    conflicts = {c["event"]["subject"]: c["event"]["conflict"] for c in room.changes()}
    assert conflicts == {"Double booked": True, "After": False}
    # An incremental pull reads only the delta's rows and asks the table for overlapping host bookings.
    room.book_in_outlook("Double booked again", 0)
    room.book_in_outlook("Later", 5)
    room.pull()
    conflicts = {c["event"]["subject"]: c["event"]["conflict"] for c in room.changes()}
    assert conflicts == {"Double booked again": True, "Later": False}


def test_recurring_series_arrive_as_occurrences(room):
    start, end = slot(0)
    room.simulator.sim.graph.create_event(room.mailbox, {
        "subject": "Weekly class", "start": {"dateTime": start.isoformat()[:19], "timeZone": "UTC"},
        "end": {"dateTime": end.isoformat()[:19], "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1,
                                   "daysOfWeek": [start.strftime("%A").lower()]},
                       "range": {"type": "numbered", "startDate": start.date().isoformat(),
                                 "numberOfOccurrences": 4}}}, as_user=room.directory.other_staff)
    room.pull()
    changes = room.changes()
    assert len(changes) == 4
    assert len({c["event"]["series_master_id"] for c in changes}) == 1
    assert len({c["event_id"] for c in changes}) == 4


def test_delta_410_and_window_rebaseline_publish_nothing_twice(room, simulator, api, app):
    room.book_in_outlook("Keep", 2)
    room.pull()
    assert len(room.changes()) == 1
    simulator.sim.graph.invalidate_delta(room.mailbox)
    added = room.book_in_outlook("While the token died", 6)
    room.pull()  # 410, then a new baseline diffed against what was stored
    (change,) = room.changes()
    assert change["event_id"] == added["id"] and change["type"] == "created"

    later = build_services(Settings.from_env(os.environ), clock=lambda: datetime.now(UTC) + timedelta(days=9))
    later.pull.pull(room.system, "r1")  # the window has to move forward: a new baseline
    assert room.changes() == []  # the events are still there (and in the new window): nothing to publish
    counts = simulator.sim.graph.counter_snapshot()["counts"]
    assert counts.get("graph.delta.initial", 0) >= 3


def test_creator_details_only_after_the_switch_and_a_backfill(room, api):
    api.put(f"/api/systems/{room.system}/locations/main", json={"title_mode": "patron_name",
                                                                "populate_creator": False})
    room.book_in_outlook("Before", 1)
    room.pull()
    (before,) = room.changes()
    assert "creator" not in before["event"]
    off = api.post(f"/api/systems/{room.system}/connections/space/r1/external-events/backfill-creators")
    assert off.status_code == 400
    api.put(f"/api/systems/{room.system}/locations/main", json={"title_mode": "patron_name",
                                                                "populate_creator": True})
    room.book_in_outlook("After", 3)
    room.pull()
    (after,) = room.changes()
    assert after["event"]["creator"]["email"] == room.directory.other_staff
    backfill = api.post(f"/api/systems/{room.system}/connections/space/r1/external-events/backfill-creators")
    assert backfill.status_code == 200 and backfill.json() == {"updated": 1}
    (filled,) = room.changes()
    assert filled["type"] == "updated" and filled["event_id"] == before["event_id"]
    assert filled["event"]["creator"]["email"] == room.directory.other_staff


def test_the_feed_pages_by_cursor(room, api):
    for hour in range(0, 30, 2):
        room.book_in_outlook(f"B{hour}", hour)
    room.pull()
    base = f"/api/systems/{room.system}/connections/space/r1/external-events"
    first = api.get(f"{base}?cursor=0&limit=10").json()
    assert len(first["changes"]) == 10 and first["more"] is True
    second = api.get(f"{base}?cursor={first['next_cursor']}&limit=10").json()
    assert len(second["changes"]) == 5 and second["more"] is False
    seqs = [c["seq"] for c in first["changes"] + second["changes"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 15
    assert api.get(f"{base}?cursor=abc").status_code == 400
    assert api.get(f"{base}?limit=0").status_code == 400


def test_two_pulls_of_one_room_at_once_publish_each_change_once(room):
    for hour in range(0, 20, 2):
        room.book_in_outlook(f"B{hour}", hour)
    results, errors = [], []

    def pull():
        try:
            results.append(room.pull())
        except PullBusy as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    room.pull()
    changes = room.changes()
    assert len(changes) == 10 and len({c["event_id"] for c in changes}) == 10
    assert len(results) + len(errors) == 4 and results


def test_the_timer_fans_pulls_out_through_the_queue(room, api, app):
    made = room.book_in_outlook("Via the timer", 2)
    response = app.client(key=MASTER_KEY).post("/admin/functions/room_pull_sweep", json={"input": ""})
    assert response.status_code == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        changes = room.changes()
        if changes:
            break
        time.sleep(0.3)
    assert [c["event_id"] for c in changes] == [made["id"]]


def test_the_feed_needs_a_space_connection(api, room):
    assert api.get(f"/api/systems/{room.system}/connections/space/nobody/external-events").status_code == 404


def test_disabling_the_integration_stops_all_syncing_until_it_is_enabled_again(room, api, simulator, directory,
                                                                               system, services):
    """Pulls, exports and token refreshes all stop (nothing reaches Microsoft, nothing is lost); the connection
    reads as disabled; switching the integration back on picks up where it stopped."""
    booked = room.book_in_outlook("Booked while sync was off", 2)
    configure(api, system, directory, enabled=False)
    counts = simulator.sim.counters.snapshot()["counts"]
    graph_before = counts.get("graph.requests", 0)
    refresh_before = sum(v for k, v in counts.items() if k.startswith("identity.token.refresh_token"))

    status = api.get(f"/api/systems/{system}/connections/space/r1").json()
    assert status["status"] == "disabled"
    assert room.pull()["outcome"] == "skipped"
    exported = api.put(f"/api/systems/{system}/connections/space/r1/items/while-off", json=booking(5))
    assert exported.status_code == 202, exported.text  # accepted, kept, sent once sync is back on
    assert exported.json()["occurrences"][0]["state"] == "pending"
    refresh = services.token_health.refresh({"system": system, "kind": "space", "id": "r1"})
    assert refresh == "integration_disabled"

    counts = simulator.sim.counters.snapshot()["counts"]
    assert counts.get("graph.requests", 0) == graph_before
    assert sum(v for k, v in counts.items() if k.startswith("identity.token.refresh_token")) == refresh_before
    assert room.changes() == []

    configure(api, system, directory, enabled=True)
    assert api.get(f"/api/systems/{system}/connections/space/r1").json()["status"] == "connected"
    assert room.pull()["outcome"] == "pulled"
    assert [(c["type"], c["event_id"]) for c in room.changes()] == [("created", booked["id"])]
    # The booking kept while sync was off goes out with the connection's next retry, without being sent again.
    later = build_services(Settings.from_env(os.environ), clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    assert later.export.process({"type": "retry", "system": system, "kind": "space", "id": "r1"}) == "retried 1"
    kept = api.get(f"/api/systems/{system}/connections/space/r1/items/while-off").json()
    assert kept["occurrences"][0]["state"] == "synced"


def test_a_pull_throttled_longer_than_the_client_sleeps_comes_back_when_graph_said(room, simulator):
    """A delta read answered 429 with Retry-After 120: the room's queue message is sent again hidden for 120 s
    (not retried in-process after 30 s), having cost one request; after the 120 s the pull publishes as usual
    without being refused (the simulator refuses, and counts, any request to the room before then)."""
    made = room.book_in_outlook("Board meeting", 4)
    simulator.sim.graph.add_fault("429", count=1, method="GET", path_contains="/delta", retry_after=120)
    counts = simulator.sim.counters.snapshot()["counts"]
    before, throttled = counts.get("graph.requests", 0), counts.get("graph.throttled", 0)
    answer = room.services.pull.pull_from_queue(room.system, "r1")
    assert answer == {"outcome": "throttled", "requeued_in_seconds": 120}
    assert simulator.sim.counters.snapshot()["counts"]["graph.requests"] == before + 1
    assert room.changes() == []
    simulator.sim.clock.advance(121)
    assert room.pull()["published"] == 1
    assert [c["event_id"] for c in room.changes()] == [made["id"]]
    assert simulator.sim.counters.snapshot()["counts"].get("graph.throttled", 0) == throttled


def test_a_pull_costs_a_few_table_requests_and_nothing_when_nothing_changed(room):
    """What bench/pull measures over 500 rooms, pinned for one: the sweep's message carries the room's connection
    and its system's ETags, so a pull of 3 changes reads the state, its token, one query of the changes' records,
    one of their stored rows and commits once (5 table requests; the sweep's message is the 6th), and a pull that
    finds nothing new reads the state and its token and writes nothing (2; 3 with the message)."""
    from shared.storage.transport import storage_requests

    counter = storage_requests()
    kept = room.book_in_outlook("Kept", 1)
    moved = room.book_in_outlook("Moved", 3)
    room.pull()
    room.changes()

    def pull_counted() -> tuple[dict, dict[str, int]]:
        (message,) = [m for m in room.services.pull.sweep_messages() if m["system"] == room.system]
        assert "carried" in message
        before, _ = counter.snapshot()
        with counter.scope("probe"):
            result = room.services.pull.pull_from_queue(room.system, "r1", message)
        after, _ = counter.snapshot()
        return result, {k[len("probe: "):]: n - before.get(k, 0) for k, n in after.items()
                        if k.startswith("probe: ") and n > before.get(k, 0)}

    room.book_in_outlook("New", 5)
    start, end = slot(6)
    room.simulator.sim.graph.update_event(moved["id"], {
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
    room.simulator.sim.graph.delete_event(kept["id"])
    result, ops = pull_counted()
    assert result["published"] == 3 and sorted(c["type"] for c in room.changes()) == ["created", "removed",
                                                                                      "updated"]
    assert sum(ops.values()) <= 5, ops
    assert not [op for op in ops if op.startswith(("table.get connections", "table.get integrations",
                                                  "table.update", "queue."))], ops

    result, ops = pull_counted()
    assert result["published"] == 0 and room.changes() == []
    assert sum(ops.values()) <= 2, ops
    assert not [op for op in ops if not op.startswith("table.get")], ops  # read, nothing written


def test_rooms_signed_in_by_one_delegate_share_its_access_token_until_one_is_removed(room, api, simulator,
                                                                                     directory):
    """A delegate signed in for many rooms: one account, one app, one set of scopes, so one access token serves
    every room (a fleet of 500 reads one token cache, not 500, and refreshes once an hour, not 500 times). Removing
    one room's authorization drops the shared token: the others read their own caches again, and still work."""
    from shared.storage.transport import storage_requests

    connect(api, simulator, room.system, "space", "r2", directory.staff)
    response = api.patch(f"/api/systems/{room.system}/connections/space/r2",
                         json={"sync_resource": directory.room, "two_way": True})
    assert response.status_code == 200, response.text
    counter = storage_requests()

    def token_reads(subject: str) -> int:
        before, _ = counter.snapshot()
        with counter.scope("memo"):
            assert room.services.pull.pull(room.system, subject)["outcome"] == "pulled"
        after, _ = counter.snapshot()
        return sum(n - before.get(k, 0) for k, n in after.items()
                   if k.startswith("memo: table.get ") and k.endswith("tokencaches"))

    assert token_reads("r1") == 0  # the fixture's first pull left r1's token in hand
    assert token_reads("r2") == 0  # r2's own cache is never read: the account's token is in hand
    room.services.connections.remove(room.system, "space", "r1", remove_events=False)
    assert token_reads("r2") == 1  # r2 reads its own cache again
    assert token_reads("r2") == 0
