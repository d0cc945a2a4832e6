"""Bulk export jobs through the API and the `export-work` queue worker of the local host."""

import os
import time
from datetime import UTC, datetime, timedelta

from shared.export.content import MARKER_ID
from shared.runtime import build_services
from shared.settings import Settings


def items(n, start=datetime(2027, 1, 4, 9, 0), prefix="shift"):
    out = []
    for i in range(n):
        begin = start + timedelta(days=i // 3, hours=(i % 3) * 3)
        out.append({"item": f"{prefix}-{i:04d}", "title": f"Desk {i}",
                    "occurrences": [{"key": "o1", "start": begin.isoformat(),
                                     "end": (begin + timedelta(hours=2)).isoformat(),
                                     "time_zone": "America/New_York"}]})
    return out


def run_job(api, system, mode, payload, timeout=60):
    base = f"/api/systems/{system}/connections/user/u1/exports"
    started = api.post(base, json={"mode": mode, "items": payload})
    assert started.status_code == 202, started.text
    job = started.json()["job"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"{base}/{job}").json()
        if status["state"].startswith("completed"):
            return status
        time.sleep(0.25)
    raise AssertionError(f"job did not complete: {status}")


def markers(simulator, mailbox):
    events = simulator.sim.graph.list_events(mailbox)
    values = [p["value"] for e in events for p in e.get("singleValueExtendedProperties", []) if p["id"] == MARKER_ID]
    return events, values


def test_not_exported_before_versus_all(api, simulator, system, staff):
    payload = items(30)
    first = run_job(api, system, "not_exported", payload)
    assert (first["total"], first["done"], first["failed"], first["state"]) == (30, 30, 0, "completed")
    events, values = markers(simulator, staff)
    assert len(events) == 30 and len(set(values)) == 30
    # In Outlook: two events deleted, one retitled.
    by_subject = {e["subject"]: e for e in events}
    simulator.sim.graph.delete_event(by_subject["Desk 3"]["id"])
    simulator.sim.graph.delete_event(by_subject["Desk 4"]["id"])
    simulator.sim.graph.update_event(by_subject["Desk 5"]["id"], {"subject": "Changed in Outlook"})
    untouched = by_subject["Desk 6"]["id"]

    again = run_job(api, system, "not_exported", payload)
    assert again["done"] == 30 and again["failed"] == 0
    events, _ = markers(simulator, staff)
    assert len(events) == 28  # "not exported before": what was exported once is left alone

    everything = run_job(api, system, "all", payload)
    assert everything["done"] == 30 and everything["failed"] == 0
    events, values = markers(simulator, staff)
    subjects = sorted(e["subject"] for e in events)
    assert len(events) == 30 and len(set(values)) == 30  # recreated, never duplicated
    assert "Changed in Outlook" not in subjects and "Desk 5" in subjects
    assert untouched in {e["id"] for e in events}  # updated in place

    twice = run_job(api, system, "all", payload)
    assert twice["done"] == 30
    assert len(simulator.sim.graph.list_events(staff)) == 30


def test_job_progress_and_validation(api, system, staff):
    base = f"/api/systems/{system}/connections/user/u1/exports"
    bad_mode = api.post(base, json={"mode": "everything", "items": items(1)})
    assert bad_mode.status_code == 400 and bad_mode.json()["error"]["details"]["field"] == "mode"
    bad_item = items(3)
    bad_item[2]["occurrences"][0]["time_zone"] = "Nowhere/Land"
    refused = api.post(base, json={"mode": "all", "items": bad_item})
    assert refused.status_code == 400
    assert refused.json()["error"]["details"]["field"] == "items[2].occurrences[0].time_zone"
    duplicate = api.post(base, json={"mode": "all", "items": items(2) + items(1)})
    assert duplicate.status_code == 400 and duplicate.json()["error"]["details"]["field"] == "items[2].item"
    assert api.get(f"{base}/nope").status_code == 404
    status = run_job(api, system, "not_exported", items(450, prefix="big"))
    assert status["total"] == 450 and status["done"] == 450
    listed = api.get(base).json()["jobs"]
    assert listed[0]["job"] == status["job"]


def test_faults_end_with_exactly_the_expected_events(api, simulator, system, staff):
    graph = simulator.sim.graph
    graph.add_fault("429", probability=0.10, retry_after=0, seed=7)
    graph.add_fault("503", probability=0.05, seed=8)
    graph.add_fault("timeout_after_commit", probability=0.02, seed=9)
    status = run_job(api, system, "not_exported", items(300, prefix="faulty"), timeout=120)
    counts = graph.counter_snapshot()["counts"]
    injected = {k: v for k, v in counts.items() if k.startswith("graph.faults.")}
    assert sum(injected.values()) > 10, injected  # the faults really fired
    graph.clear_faults()
    assert status["failed"] == 0
    if status["retrying"]:  # handed to the retry table: the drain finishes them (here at once, clock moved on)
        services = build_services(Settings.from_env(os.environ), clock=lambda: datetime.now(UTC) + timedelta(hours=1))
        codes = {e.last_error_code for e in services.repos.retries.partition("retry") if e.system == system}
        print(f"{status['retrying']} occurrence(s) went to the retry table: {codes}")
        services.export.process({"type": "retry", "system": system, "kind": "user", "id": "u1"})
    events, values = markers(simulator, staff)
    assert len(events) == 300 and len(set(values)) == 300


def test_finished_jobs_are_listed_as_completed(api, system, staff):
    status = run_job(api, system, "not_exported", items(3, prefix="listed"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (job,) = [j for j in api.get(f"/api/systems/{system}/connections/user/u1/exports").json()["jobs"]
                  if j["job"] == status["job"]]
        if job["completed_at"]:
            break
        time.sleep(0.2)
    assert job["state"] == "completed" and job["completed_at"]
