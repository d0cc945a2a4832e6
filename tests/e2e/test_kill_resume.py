"""A worker killed midway through a bulk export: the app's process is SIGKILLed while it writes events, started
again, and the job ends with exactly the expected events (no duplicates, none missing)."""

from __future__ import annotations

import time

import pytest

from devstack.ports import free_port
from shared.export.content import MARKER_ID
from tests.conftest import FUNCTION_KEY, ApiClient
from tests.e2e.processes import AppProcess, app_env, errors, isolated_storage
from tests.helpers import configure, connect, make_directory, new_system
from tests.integration.test_bulk_export import items

OCCURRENCES = 600


@pytest.fixture
def own_storage():
    """Storage of its own, so the session's in-process app host does not work on this test's queue."""
    with isolated_storage() as azurite:
        yield azurite


def test_killed_worker_resumes_to_exactly_the_expected_events(app, simulator, own_storage, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = app_env(app.env, own_storage, url,
                  DEVSTACK_QUEUE_LEASE_SECONDS="4")  # a crashed worker's messages come back after 4 s
    worker = AppProcess(env, port, tmp_path / "app.log")
    worker.start()
    try:
        api = ApiClient(url, FUNCTION_KEY)
        d = make_directory(simulator, f"{url}/api/oauth/callback")
        system = new_system()
        configure(api, system, d)
        connect(api, simulator, system, "user", "u1", d.staff)
        simulator.sim.graph.set_latency(20, 0)  # about 3 s of Graph work in all
        started = api.post(f"/api/systems/{system}/connections/user/u1/exports",
                           json={"mode": "not_exported", "items": items(OCCURRENCES, prefix="kill")})
        assert started.status_code == 202, started.text
        job = started.json()["job"]

        deadline = time.monotonic() + 60
        while len(simulator.sim.graph.list_events(d.staff)) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.kill()
        at_kill = len(simulator.sim.graph.list_events(d.staff))
        assert 0 < at_kill < OCCURRENCES, at_kill  # killed midway

        worker.start()
        deadline = time.monotonic() + 90
        status: dict = {}
        while time.monotonic() < deadline:
            status = api.get(f"/api/systems/{system}/connections/user/u1/exports/{job}", timeout=10).json()
            if status.get("state", "").startswith("completed"):
                break
            time.sleep(0.5)
        assert status["state"] == "completed", (status, errors(tmp_path / "app.log"))
        assert (status["done"], status["failed"]) == (OCCURRENCES, 0)
        events = simulator.sim.graph.list_events(d.staff)
        values = [p["value"] for e in events for p in e.get("singleValueExtendedProperties", [])
                  if p["id"] == MARKER_ID]
        assert len(events) == OCCURRENCES, f"{len(events)} events after a kill at {at_kill}"
        assert len(set(values)) == OCCURRENCES
    finally:
        worker.stop()
