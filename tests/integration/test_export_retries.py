"""Nothing is lost: occurrences Graph keeps refusing go to the retry table, the drain tries them again later, and
repeated failure raises an alert."""

import os
from datetime import timedelta

import pytest

from shared.runtime import build_services
from shared.settings import Settings
from tests.helpers import connect

SHIFT = {"title": "Desk", "occurrences": [{"key": "a", "start": "2027-03-01T09:00:00",
                                           "end": "2027-03-01T10:00:00", "time_zone": "Europe/Paris"}]}


class MovableClock:
    def __init__(self, simulator):
        self.offset = timedelta()
        self._now = simulator.sim.clock.now

    def __call__(self):
        return self._now() + self.offset


@pytest.fixture
def later(simulator):
    clock = MovableClock(simulator)
    return clock, build_services(Settings.from_env(os.environ), clock=clock)


def item_state(api, system):
    (occurrence,) = api.get(f"/api/systems/{system}/connections/user/u1/items/shift").json()["occurrences"]
    return occurrence


def test_a_write_that_keeps_failing_is_retried_later_and_lands(api, simulator, system, staff, later):
    clock, services = later
    simulator.sim.graph.add_fault("503", probability=1.0, method="POST", retry_after=0)
    response = api.put(f"/api/systems/{system}/connections/user/u1/items/shift", json=SHIFT)
    assert response.status_code == 202, response.text
    occurrence = item_state(api, system)
    assert occurrence["state"] == "pending" and occurrence["sync_id"] is None
    assert occurrence["error"]["microsoft_code"]
    simulator.sim.graph.clear_faults()

    # Not due yet (the retry table is shared with the session's other tests, whose entries may be due).
    assert [e for e in services.repos.retries.due(clock()) if e.system == system] == []
    clock.offset = timedelta(minutes=2)
    assert [e.occurrence_key for e in services.repos.retries.due(clock()) if e.system == system] == ["a"]
    assert services.export.drain_retries() >= 1  # one message per connection with due occurrences
    services.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    occurrence = item_state(api, system)
    assert occurrence["state"] == "synced" and occurrence["sync_id"]
    assert len(simulator.sim.graph.list_events(staff)) == 1
    assert [e for e in services.repos.retries.partition("retry") if e.system == system] == []


def test_repeated_failure_raises_an_alert(api, simulator, system, staff, later):
    clock, services = later
    simulator.sim.graph.add_fault("503", probability=1.0, method="POST", retry_after=0)
    api.put(f"/api/systems/{system}/connections/user/u1/items/shift", json=SHIFT)
    for hours in (1, 2, 4, 8, 16):
        clock.offset = timedelta(hours=hours)
        services.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    occurrence = item_state(api, system)
    assert occurrence["state"] == "failed"
    alerts = api.get(f"/api/systems/{system}/alerts").json()["alerts"]
    assert [(a["type"], a["subject"]) for a in alerts] == [("repeated_failures", "user:u1")]
    assert [e for e in services.repos.retries.partition("retry") if e.system == system] == []


def test_items_sent_while_reauthorization_is_required_are_kept_and_pushed_after(api, simulator, directory,
                                                                              system, staff, later):
    clock, services = later
    simulator.control.revoke_sessions(directory.staff)  # e.g. a password reset: live tokens die too
    response = api.put(f"/api/systems/{system}/connections/user/u1/items/shift", json=SHIFT)
    assert response.status_code == 202, response.text
    assert "reauthorization" in response.json()["reason"]
    status = api.get(f"/api/systems/{system}/connections/user/u1").json()
    assert (status["status"], status["last_error"]["microsoft_code"]) == ("reauthorization_required", "AADSTS50173")
    connect(api, simulator, system, "user", "u1", directory.staff)
    clock.offset = timedelta(minutes=2)
    services.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    assert item_state(api, system)["state"] == "synced"
    assert len(simulator.sim.graph.list_events(staff)) == 1


def graph_requests(simulator) -> int:
    """Requests that reached the simulated Graph (each `$batch` item counts, as Outlook counts them)."""
    return simulator.sim.counters.snapshot()["counts"].get("graph.requests", 0)


def test_a_long_retry_after_is_honoured_in_full_with_exactly_one_more_request(api, simulator, system, staff,
                                                                             later):
    """Outlook answers a create 429 with Retry-After 120: the item answers 202 pending, its occurrence is due 120 s
    later, nothing is sent to the mailbox before then (the simulator would refuse it and count it), and one
    request after it lands the event."""
    clock, services = later
    simulator.sim.graph.add_fault("429", count=1, method="POST", path_contains="/events", retry_after=120)
    before = graph_requests(simulator)
    thrown_at = clock()
    response = api.put(f"/api/systems/{system}/connections/user/u1/items/shift", json=SHIFT)
    assert response.status_code == 202, response.text
    occurrence = item_state(api, system)
    assert (occurrence["state"], occurrence["error"]["microsoft_code"]) == ("pending", "ApplicationThrottled")
    assert graph_requests(simulator) == before + 1  # no in-process retry after 30 s, or at all
    (entry,) = [e for e in services.repos.retries.partition("retry") if e.system == system]
    assert 119 <= (entry.next_attempt_at - thrown_at).total_seconds() <= 125

    clock.offset = timedelta(seconds=60)  # the drain runs before the time is up: nothing is sent
    services.export.drain_retries()
    services.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    assert graph_requests(simulator) == before + 1

    clock.offset = timedelta()
    simulator.sim.clock.advance(121)  # the simulator's clock, which `later` reads too
    assert services.export.drain_retries() >= 1
    services.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    occurrence = item_state(api, system)
    assert occurrence["state"] == "synced" and occurrence["sync_id"]
    assert graph_requests(simulator) == before + 2  # exactly one more request, after the Retry-After
    assert simulator.sim.counters.snapshot()["counts"].get("graph.throttled", 0) == 0  # none sent too early
    assert len(simulator.sim.graph.list_events(staff)) == 1
    assert [e for e in services.repos.retries.partition("retry") if e.system == system] == []
