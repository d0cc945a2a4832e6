"""The purge of expired pending OAuth flows, against Azurite: expired rows go, live rows stay, a bounded number a
run, each delete under the ETag the query read; and the timer that runs it in the app."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.flow_purge import FlowPurge
from shared.models import PendingFlow
from shared.storage.repositories import PendingFlows
from tests.conftest import MASTER_KEY
from tests.helpers import RETURN_URL

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def flows(storage_connection_string, table_prefix) -> PendingFlows:
    repo = PendingFlows(TableServiceClient.from_connection_string(storage_connection_string), table_prefix)
    repo.ensure_table()
    return repo


def add(flows: PendingFlows, expires_at: datetime) -> PendingFlow:
    return flows.insert(PendingFlow(
        state_hash=uuid.uuid4().hex, system="s1", kind="user", subject_id="u1", return_url="https://host.test/",
        sealed_flow="sealed", client_id="client", expires_at=expires_at, created_at=expires_at - timedelta(minutes=10),
    ))


def remaining(flows: PendingFlows) -> set[str]:
    return {row.state_hash for row in flows.query()}


def test_expired_flows_are_deleted_and_live_ones_kept(flows):
    expired = [add(flows, NOW - timedelta(seconds=s)) for s in (1, 600, 86_400 * 30)]
    live = [add(flows, NOW + timedelta(seconds=s)) for s in (1, 599)]
    result = FlowPurge(flows, lambda: NOW).purge()
    assert (result.deleted, result.skipped, result.more) == (3, 0, False)
    assert remaining(flows) == {row.state_hash for row in live}
    assert not remaining(flows) & {row.state_hash for row in expired}
    assert FlowPurge(flows, lambda: NOW).purge().deleted == 0  # nothing left to do


def test_a_run_deletes_at_most_its_bound_and_the_next_run_goes_on(flows):
    for minutes in range(7):
        add(flows, NOW - timedelta(minutes=minutes + 1))
    live = add(flows, NOW + timedelta(minutes=5))
    purge = FlowPurge(flows, lambda: NOW, max_per_run=3, page_size=2)  # several pages within one run
    first = purge.purge()
    assert (first.deleted, first.more) == (3, True)
    assert len(remaining(flows)) == 5
    assert purge.purge().deleted == 3
    last = purge.purge()
    assert (last.deleted, last.more) == (1, False)
    assert remaining(flows) == {live.state_hash}


def test_a_row_changed_since_it_was_read_is_left_alone(flows):
    add(flows, NOW - timedelta(minutes=1))
    (read,) = flows.expired(NOW)
    changed = flows.get(read.partition_key(), "flow")
    changed.expires_at = NOW + timedelta(minutes=10)  # rewritten after the purge's query: a new ETag
    flows.update(changed)
    assert FlowPurge(flows, lambda: NOW).remove(read) is False
    assert remaining(flows) == {read.state_hash}


def test_a_row_the_callback_deleted_meanwhile_is_no_error(flows):
    row = add(flows, NOW - timedelta(minutes=1))
    (read,) = flows.expired(NOW)
    flows.delete(row.partition_key(), row.row_key(), etag=read.etag)  # the callback redeemed it first
    assert FlowPurge(flows, lambda: NOW).remove(read) is True  # gone either way: nothing to skip
    assert remaining(flows) == set()


def test_the_timer_purges_the_apps_expired_flows(api, app, system):
    """Two sign-ins started through the API; one is aged past its expiry in the table. The registered timer, run
    through the admin API as an operator would, deletes only that one."""
    for user in ("aged", "fresh"):
        response = api.post(f"/api/systems/{system}/connections/user/{user}/authorize",
                            json={"return_url": RETURN_URL})
        assert response.status_code == 201, response.text
    table = TableServiceClient.from_connection_string(app.env["AzureWebJobsStorage"]).get_table_client(
        app.env["TABLE_PREFIX"] + "pendingflows")

    def subjects() -> set[str]:
        return {row["subject_id"] for row in table.query_entities("system eq @s", parameters={"s": system})}

    assert subjects() == {"aged", "fresh"}
    for row in table.query_entities("system eq @s and subject_id eq 'aged'", parameters={"s": system}):
        row["expires_at"] = datetime.now(UTC) - timedelta(seconds=1)
        table.update_entity(row)
    response = app.client(key=MASTER_KEY).post("/admin/functions/pending_flow_purge", json={"input": ""})
    assert response.status_code == 202
    deadline = time.monotonic() + 30
    while subjects() != {"fresh"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert subjects() == {"fresh"}
