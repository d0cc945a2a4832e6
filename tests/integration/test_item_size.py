"""The documented limits are storable (issue 12, point 5): an item of 500 occurrences, with every text at its
longest, goes through HTTP to Azurite and the simulator and reads back whole; a bulk job of 20,000 occurrences is
stored before its job row exists; a job whose work cannot be stored or queued leaves no job row behind."""

import json
import os
import time
import uuid

import pytest

from devstack.azurite import connection_string
from devstack.ports import free_port
from shared.errors import DependencyUnavailable
from shared.export.items import MAX_OCCURRENCES_PER_ITEM, MAX_TEXT
from shared.export.service import MAX_JOB_OCCURRENCES
from shared.http import MAX_BODY_BYTES
from shared.models import connection_partition
from shared.runtime import build_services
from shared.settings import Settings

ZONE = "America/Argentina/ComodRivadavia"  # among the longest IANA names
LONG = ("Zo\u00eb \U0001d504da " * MAX_TEXT)[:MAX_TEXT]  # outside the BMP: the most UTF-16 units a text has


def occurrences(count, prefix="k", day=0):
    """`count` slots, keys at the longest an ID may be (64 characters)."""
    slots = []
    for n in range(count):
        hour, minute = divmod(n, 60)
        date = f"2031-{1 + (day + hour // 24) // 28:02d}-{1 + (day + hour // 24) % 28:02d}"
        start = f"{date}T{hour % 24:02d}:{minute:02d}:00"
        key = f"{prefix}{n:06d}".ljust(64, "x")
        slots.append({"key": key, "start": start, "end": start[:-2] + "59", "time_zone": ZONE})
    return slots


def item_body(count, **kw):
    return {"title": LONG, "patron": {"first_name": LONG, "last_name": LONG, "email": LONG},
            "public_nickname": LONG, "location_text": LONG, "notes": LONG,
            "occurrences": occurrences(count, **kw)}


def test_an_item_of_500_occurrences_at_their_longest_is_stored_synced_and_read_back(api, simulator, system, staff):
    body = item_body(MAX_OCCURRENCES_PER_ITEM)
    path = f"/api/systems/{system}/connections/user/u1/items/big"
    response = api.put(path, json=body, timeout=300)
    assert response.status_code == 200, response.text[:500]
    read = api.get(path)
    assert read.status_code == 200, read.text[:500]
    got = read.json()["occurrences"]
    assert [{k: o[k] for k in ("key", "start", "end", "time_zone")} for o in got] == body["occurrences"]
    assert all(o["state"] == "synced" and o["sync_id"] for o in got)
    events = simulator.sim.graph.list_events(staff)
    assert len(events) == MAX_OCCURRENCES_PER_ITEM
    assert {e["id"] for e in events} == {o["sync_id"] for o in got}
    # Changing it (fewer occurrences) rewrites the row whole: nothing of the longer version is read back.
    smaller = {**body, "occurrences": body["occurrences"][:3]}
    assert api.put(path, json=smaller, timeout=300).status_code == 200
    assert [o["key"] for o in api.get(path).json()["occurrences"]] == [o["key"] for o in smaller["occurrences"]]
    assert len(simulator.sim.graph.list_events(staff)) == 3


def test_a_bulk_job_of_items_over_64_kib_runs_to_completion(api, simulator, system, staff):
    """On the old code the item row was over a string property's 64 KiB: 503, and the job stayed queued."""
    items = [{"item": "big-a", **item_body(300)}]
    started = api.post(f"/api/systems/{system}/connections/user/u1/exports", json={"mode": "all", "items": items},
                       timeout=120)
    assert started.status_code == 202, started.text[:500]
    job = started.json()["job"]
    deadline = time.monotonic() + 240
    while True:
        status = api.get(f"/api/systems/{system}/connections/user/u1/exports/{job}").json()
        if status["state"].startswith("completed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status["state"] == "completed" and status["done"] == 300, status
    assert len(simulator.sim.graph.list_events(staff)) == 300


def _own_services(system, azurite=None):
    """The app's services over fresh tables (their own prefix) holding a copy of the system's integration and
    connection: what they store is seen only here, and the queue messages they send find no job in the app's
    tables (its worker drops them), so a 20,000-occurrence job is stored without being run."""
    app = build_services(Settings.from_env(os.environ))
    env = {**os.environ, "TABLE_PREFIX": "own" + uuid.uuid4().hex[:8]}
    if azurite is not None:  # its tables, but a queue endpoint nobody listens on: every send fails
        env["AzureWebJobsStorage"] = connection_string(azurite.table_port, free_port())
    own = build_services(Settings.from_env(env))
    own.repos.ensure_tables()
    own.repos.integrations.upsert(app.repos.integrations.find(system))
    own.repos.connections.upsert(app.repos.connections.find(system, "user", "u1"))
    return own


def test_a_job_of_20000_occurrences_is_stored_whole_and_then_its_job_row(api, system, staff):
    per_item = MAX_OCCURRENCES_PER_ITEM
    items = [{"item": f"item-{n:03d}", **item_body(per_item, prefix=f"i{n:03d}-")}
             for n in range(MAX_JOB_OCCURRENCES // per_item)]
    body = {"mode": "all", "items": items}
    # The documented limit fits in one request when texts are realistic (the longest texts on every item do not).
    realistic = {"mode": "all", "items": [{"item": i["item"], "title": "Desk shift", "notes": "Bring the keys",
                                           "occurrences": i["occurrences"]} for i in items]}
    assert len(json.dumps(realistic).encode()) < MAX_BODY_BYTES
    services = _own_services(system)
    started = services.export.start_export(system, "user", "u1", body)
    assert started["total"] == MAX_JOB_OCCURRENCES and started["state"] == "queued"
    partition = connection_partition(system, "user", "u1")
    stored = services.repos.items.of_ids(partition, [i["item"] for i in items])
    assert len(stored) == len(items)
    for item in stored:
        sent = items[int(item.item_id.split("-")[1])]
        assert item.occurrences == sent["occurrences"] and item.notes == LONG.strip()
    (job,) = services.repos.export_jobs.partition(partition)
    chunks = list(services.repos.export_chunks.partition(job.job_id))
    assert job.chunks == len(chunks) == len(items) and sum(c.occurrences for c in chunks) == MAX_JOB_OCCURRENCES


def test_a_job_whose_work_cannot_be_stored_leaves_no_job_row(api, system, staff):
    services = _own_services(system)
    services.repos.export_chunks._client.delete_table()  # the chunk rows cannot be written: a real refusal
    with pytest.raises(DependencyUnavailable):
        services.export.start_export(system, "user", "u1", {"mode": "all", "items": [{"item": "a", **item_body(3)}]})
    assert list(services.repos.export_jobs.partition(connection_partition(system, "user", "u1"))) == []


def test_a_job_that_cannot_be_queued_is_withdrawn(api, azurite, system, staff):
    """On the old code its job row stayed, listed as queued, with chunks no message would ever run."""
    services = _own_services(system, azurite)
    items = [{"item": f"i{n}", **item_body(150, prefix=f"i{n}-")} for n in range(3)]
    with pytest.raises(DependencyUnavailable):
        services.export.start_export(system, "user", "u1", {"mode": "all", "items": items})
    partition = connection_partition(system, "user", "u1")
    assert list(services.repos.export_jobs.partition(partition)) == []
    assert list(services.repos.export_chunks.query()) == []
    assert len(services.repos.items.of_ids(partition, ["i0", "i1", "i2"])) == 3  # stored: a retry resends them
