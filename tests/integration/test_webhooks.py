"""Signed webhooks: what a pull publishes to a two-way room's feed is POSTed to the host's webhook URL, signed,
retried from the `webhook-delivery` queue until it is accepted, and alerted on after repeated failure.

The app behind the local host runs its own queue listeners, so deliveries happen as in Azure; the test only
swaps in a worker with a tiny backoff base (the constructor's knob) so retries take seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.wrappers import Request, Response

from devstack.ports import free_port
from devstack.serving import serve_in_thread, shutdown
from shared import runtime
from shared.integrations import webhook_secret_name
from shared.webhooks import BACKOFF_CAP_SECONDS, MAX_ATTEMPTS, WebhookService, webhook_session
from tests.helpers import connect, integration_body, new_system

SECRET = "whsec-" + "7f3a9c01e4b2d658" * 3  # the host's choice: 54 characters
WAIT = 30.0
SOON = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)


# --- a host's webhook endpoint ---------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


class Receiver:
    """Records every POST; answers 500 to the next `fail_next` of them and to the n-th POSTs in `fail_numbers`,
    204 otherwise."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fail_next = 0
        self.fail_numbers: set[int] = set()
        self._lock = threading.Lock()
        self.server = serve_in_thread(self._app, free_port(), name="webhook-receiver")
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/outlook"

    def _app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        with self._lock:
            status = 500 if self.fail_next > 0 or len(self.requests) + 1 in self.fail_numbers else 204
            self.fail_next = max(0, self.fail_next - 1)
            self.requests.append(Received(dict(request.headers), body, status))
        return Response(status=status)(environ, start_response)

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def wait_delivered(self, count: int = 1) -> list[Received]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if len(self.delivered()) >= count:
                return self.delivered()
            time.sleep(0.1)
        raise AssertionError(f"no delivery within {WAIT} s; received {[r.status for r in self.requests]}")


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What the README tells an integrator to do, written independently of shared/webhooks.py."""
    timestamp = headers["X-Webhook-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    values = [part.strip()[3:] for part in headers["X-Webhook-Signature"].split(",")
              if part.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected, value) for value in values)


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    shutdown(running.server)


@pytest.fixture
def worker(app, monkeypatch) -> WebhookService:
    """The app's own webhook worker, rebuilt with a tiny backoff base and 4 attempts."""
    live = runtime.services()
    fast = WebhookService(live.repos, live.secrets, live.queues, live.alerts, webhook_session(live.settings),
                          backoff_base=0.5, max_attempts=4)
    monkeypatch.setattr(live, "webhooks", fast)
    return fast


# --- a two-way room with a webhook -----------------------------------------------------------------------------


class Room:
    def __init__(self, api, simulator, directory, system):
        self.api, self.simulator, self.directory, self.system = api, simulator, directory, system

    def pull(self):
        return runtime.services().pull.pull(self.system, "r1")

    def feed(self):
        response = self.api.get(f"/api/systems/{self.system}/connections/space/r1/external-events?cursor=0")
        assert response.status_code == 200, response.text
        return response.json()["changes"]

    def book_in_outlook(self, subject, hours):
        start = SOON + timedelta(hours=hours)
        end = start + timedelta(hours=1)
        return self.simulator.sim.graph.create_event(self.directory.room, {
            "subject": subject, "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}},
            as_user=self.directory.other_staff)

    def alerts(self):
        return [a for a in self.api.get(f"/api/systems/{self.system}/alerts").json()["alerts"]
                if a["type"] == "webhook_failing"]


@pytest.fixture
def room(api, simulator, directory, system, receiver, worker):
    saved = api.put(f"/api/systems/{system}/integration",
                    json=integration_body(directory, webhook_url=receiver.url, webhook_secret=SECRET))
    assert saved.status_code == 200, saved.text
    connect(api, simulator, system, "space", "r1", directory.staff)
    response = api.patch(f"/api/systems/{system}/connections/space/r1",
                         json={"sync_resource": directory.room, "two_way": True})
    assert response.status_code == 200, response.text
    room = Room(api, simulator, directory, system)
    assert room.pull()["published"] == 0  # the first baseline of an empty calendar: nothing to send
    return room


# --- the tests -------------------------------------------------------------------------------------------------


def test_an_outlook_booking_is_posted_signed_with_the_feeds_change_ids(room, receiver, worker, caplog):
    caplog.set_level(logging.DEBUG)
    made = room.book_in_outlook("Board meeting", 4)
    assert room.pull()["published"] == 1
    (request,) = receiver.wait_delivered()
    body = json.loads(request.body)
    feed = room.feed()
    assert body == {"system": room.system, "space": "r1", "changes": feed}  # the feed's shape, exactly
    assert [c["event_id"] for c in body["changes"]] == [made["id"]]
    assert body["changes"][0]["id"] == f"{room.system}:r1:{feed[0]['seq']}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Webhook-Id"]
    assert abs(int(request.headers["X-Webhook-Timestamp"]) - time.time()) < 120
    assert request.headers["X-Webhook-Signature"].startswith("v1=")
    assert verify(SECRET, request.headers, request.body)
    # A tampered body, a replayed signature under another timestamp, or another secret does not verify.
    assert not verify(SECRET, request.headers, request.body.replace(b"Board meeting", b"Bored meeting"))
    assert not verify(SECRET, {**request.headers, "X-Webhook-Timestamp": str(int(time.time()) + 1000)},
                      request.body)
    assert not verify("another-secret-of-at-least-32-characters", request.headers, request.body)
    assert any("webhook" in r.getMessage() for r in caplog.records)  # the worker logged its delivery...
    assert SECRET not in caplog.text  # ...without the secret
    assert request.headers["X-Webhook-Signature"][3:] not in caplog.text

    # Webhook removed, or integration disabled: a queued delivery is dropped, nothing is sent.
    message = {"system": room.system, "space": "r1", "from_seq": 1, "to_seq": feed[-1]["seq"], "attempt": 0}
    room.api.put(f"/api/systems/{room.system}/integration",
                 json={**integration_body(room.directory, webhook_url=receiver.url), "enabled": False})
    assert worker.process(message).startswith("dropped")
    room.api.put(f"/api/systems/{room.system}/integration", json=integration_body(room.directory))
    assert worker.process(message).startswith("dropped")
    assert len(receiver.requests) == 1


def test_a_failing_endpoint_gets_the_change_again_with_the_same_delivery_id(room, receiver):
    receiver.fail_next = 2
    made = room.book_in_outlook("Study group", 6)
    room.pull()
    receiver.wait_delivered()
    attempts = receiver.requests
    assert [r.status for r in attempts] == [500, 500, 204]
    assert len({r.headers["X-Webhook-Id"] for r in attempts}) == 1  # stable across retries
    assert all(verify(SECRET, r.headers, r.body) for r in attempts)  # each attempt signed afresh
    changes = [c for r in attempts for c in json.loads(r.body)["changes"]]
    unique = {c["id"]: c for c in changes}  # at least once; the ids make duplicates harmless
    assert list(unique.values()) == room.feed()
    assert [c["event_id"] for c in unique.values()] == [made["id"]]
    assert room.alerts() == []


def test_many_changes_go_in_several_posts_and_a_retry_resends_only_the_failed_one(room, receiver, worker,
                                                                                   monkeypatch):
    monkeypatch.setattr(worker, "batch_size", 2)  # BATCH_SIZE is 100; three changes make two POSTs here
    receiver.fail_numbers = {2}
    made = [room.book_in_outlook(f"Class {n}", 2 * n) for n in range(3)]
    assert room.pull()["published"] == 3
    first, second = receiver.wait_delivered(2)
    assert [r.status for r in receiver.requests] == [204, 500, 204]
    retried = receiver.requests[1]
    assert retried.headers["X-Webhook-Id"] == second.headers["X-Webhook-Id"] != first.headers["X-Webhook-Id"]
    assert retried.body == second.body
    batches = [[c["id"] for c in json.loads(r.body)["changes"]] for r in (first, second)]
    feed = room.feed()
    assert batches == [[c["id"] for c in feed[:2]], [feed[2]["id"]]]
    assert {c["event_id"] for c in feed} == {m["id"] for m in made}


def test_repeated_failure_raises_an_alert_and_the_feed_keeps_the_change(room, receiver, worker):
    receiver.fail_next = 1000
    made = room.book_in_outlook("Lost?", 2)
    room.pull()
    deadline = time.monotonic() + WAIT
    while not room.alerts() and time.monotonic() < deadline:
        time.sleep(0.2)
    (alert,) = room.alerts()
    assert alert["status"] == "open" and alert["subject"] == "integration"
    assert "HTTP 500" in alert["message"] and "feed" in alert["message"]
    assert len(receiver.requests) == worker.max_attempts
    assert [c["event_id"] for c in room.feed()] == [made["id"]]  # nothing is lost
    time.sleep(2.5)
    assert len(receiver.requests) == worker.max_attempts  # and no more retries of that batch

    receiver.fail_next = 0
    later = room.book_in_outlook("Back again", 8)
    room.pull()
    (delivered,) = receiver.wait_delivered()
    assert [c["event_id"] for c in json.loads(delivered.body)["changes"]] == [later["id"]]
    # The worker resolves the alert once the receiver's answer is back, a moment after the receiver saw the request.
    deadline = time.monotonic() + WAIT
    while room.alerts()[0]["status"] != "resolved" and time.monotonic() < deadline:
        time.sleep(0.05)
    (alert,) = room.alerts()
    assert alert["status"] == "resolved"


def test_the_secret_is_in_key_vault_and_never_returned(api, directory, receiver, app, storage_connection_string):
    from azure.data.tables import TableServiceClient

    system = new_system()
    saved = api.put(f"/api/systems/{system}/integration",
                    json=integration_body(directory, webhook_url=receiver.url, webhook_secret=SECRET))
    assert saved.status_code == 201, saved.text
    assert saved.json()["webhook"] == {"url": receiver.url, "secret_set": True}
    shown = api.get(f"/api/systems/{system}/integration")
    assert SECRET not in saved.text and SECRET not in shown.text
    assert shown.json()["webhook"] == {"url": receiver.url, "secret_set": True}

    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        app.env["TABLE_PREFIX"] + "integrations")
    row = table.get_entity(system, "integration")
    assert SECRET not in str(dict(row)) and row["webhook_secret_version"]
    stored = runtime.services().secrets.get(webhook_secret_name(system), row["webhook_secret_version"])
    assert stored.value == SECRET

    # Saved again without the secret: the stored one is kept.
    again = api.put(f"/api/systems/{system}/integration", json=integration_body(directory, webhook_url=receiver.url))
    assert again.status_code == 200, again.text
    assert again.json()["webhook"]["secret_set"] is True
    assert table.get_entity(system, "integration")["webhook_secret_version"] == row["webhook_secret_version"]


@pytest.mark.parametrize("patch", [
    {"webhook_url": "https://hooks.example.edu/x"},  # a first webhook needs its secret
    {"webhook_url": "https://hooks.example.edu/x", "webhook_secret": "too-short"},
    {"webhook_url": "https://hooks.example.edu/x", "webhook_secret": "x" * 513},
    {"webhook_url": "https://hooks.example.edu/x", "webhook_secret": 12345678901234567890123456789012345},
    {"webhook_url": "https://hooks.example.edu/x", "webhook_secret": SECRET + "\n"},
    {"webhook_secret": SECRET},  # a secret without a URL to sign for
])
def test_bad_webhook_secrets_get_a_400_naming_the_field(api, directory, patch):
    response = api.put(f"/api/systems/{new_system()}/integration", json=integration_body(directory, **patch))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "webhook_secret"
    assert SECRET not in response.text


def test_backoff_doubles_with_jitter_up_to_an_hour():
    default = WebhookService(*(None,) * 5)
    for retry, nominal in [(1, 30), (2, 60), (3, 120), (4, 240)]:
        assert 0.8 * nominal <= default.backoff(retry) <= 1.2 * nominal
    assert default.backoff(MAX_ATTEMPTS + 20) <= BACKOFF_CAP_SECONDS
    assert default.max_attempts == MAX_ATTEMPTS
