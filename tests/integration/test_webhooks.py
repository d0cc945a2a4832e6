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
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.wrappers import Request, Response

from devstack.ports import free_port
from devstack.serving import serve_in_thread, shutdown
from shared import runtime
from shared.errors import ValidationFailed
from shared.integrations import webhook_secret_name
from shared.settings import Settings
from shared.webhooks import BACKOFF_CAP_SECONDS, MAX_ATTEMPTS, WebhookService, webhook_client
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
    query: str = ""


class Receiver:
    """Records every POST; answers 500 to the next `fail_next` of them and to the n-th POSTs in `fail_numbers`,
    a redirect to `redirect_to` when that is set, 204 otherwise."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.fail_next = 0
        self.fail_numbers: set[int] = set()
        self.redirect_to = ""
        self._lock = threading.Lock()
        self.server = serve_in_thread(self._app, free_port(), name="webhook-receiver", ssl_context=ssl_context)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hooks/outlook"

    def _app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        with self._lock:
            status = 500 if self.fail_next > 0 or len(self.requests) + 1 in self.fail_numbers else 204
            status = 307 if self.redirect_to and status == 204 else status
            self.fail_next = max(0, self.fail_next - 1)
            self.requests.append(Received(dict(request.headers), body, status, request.query_string.decode()))
        headers = {"Location": self.redirect_to} if status == 307 else {}
        return Response(status=status, headers=headers)(environ, start_response)

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
    fast = WebhookService(live.repos, live.secrets, live.queues, live.alerts, webhook_client(live.settings),
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
    assert "http_5xx" in alert["message"] and "feed" in alert["message"]  # the class, not the exact status
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


# --- where a webhook may go (SSRF) -----------------------------------------------------------------------------


class Dns:
    """A resolver answering from a table the test edits (the outbound module's DNS edge)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def services_without_loopback(resolver=None) -> runtime.Services:
    """The app's services as they are in Azure: WEBHOOK_ALLOW_LOOPBACK off (the test app has it on)."""
    return runtime.build_services(Settings.from_env(os.environ, webhook_allow_loopback=False), resolver=resolver)


INTERNAL = ["https://169.254.169.254/metadata/instance", "https://10.0.0.7/hooks", "https://172.16.5.4/",
            "https://192.168.1.1/", "https://100.64.0.1/hooks", "https://168.63.129.16/machine", "https://0.0.0.0/",
            "https://0.1.2.3/", "https://224.0.0.1/", "https://[fe80::1]/", "https://[fc00::1]/",
            "https://[::ffff:10.0.0.1]/", "https://[::ffff:169.254.169.254]/", "https://[64:ff9b::a00:1]/",
            "https://[2002:a9fe:a9fe::]/"]


@pytest.mark.parametrize("url", INTERNAL)
def test_webhook_urls_to_internal_addresses_get_a_400_naming_the_field(api, directory, url):
    """Even with loopback allowed (the test app), nothing else internal is: each is refused when saved."""
    system = new_system()
    response = api.put(f"/api/systems/{system}/integration",
                       json=integration_body(directory, webhook_url=url, webhook_secret=SECRET))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["details"]["field"] == "webhook_url"
    assert "internal address" in error["message"]
    assert api.get(f"/api/systems/{system}/integration").json()["configured"] is False


@pytest.mark.parametrize(("url", "problem"), [
    ("http://93.184.215.14/x", "must be an https URL"),  # http only to loopback
    ("https://hooks.nowhere.invalid/x", "does not resolve"),
    ("https://hooks.example.edu/a b", "without spaces"),
])
def test_webhook_urls_that_cannot_be_checked_get_a_400(api, directory, url, problem):
    response = api.put(f"/api/systems/{new_system()}/integration",
                       json=integration_body(directory, webhook_url=url, webhook_secret=SECRET))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "webhook_url"
    assert problem in response.json()["error"]["message"]


def test_with_loopback_off_loopback_names_and_addresses_are_refused(app, directory, receiver):
    """As in Azure: 127.x, [::1], ::ffff:127.0.0.1, a name resolving to loopback, a decimal spelling of
    127.0.0.1, and plain http are all refused at save, although a receiver is listening there."""
    services = services_without_loopback()
    port = receiver.port
    for url in (f"https://127.0.0.1:{port}/hooks", f"https://127.8.9.10:{port}/", f"https://[::1]:{port}/",
                f"https://[::ffff:127.0.0.1]:{port}/", f"https://localhost:{port}/", f"https://localhost.:{port}/",
                f"https://2130706433:{port}/", f"http://127.0.0.1:{port}/hooks"):
        with pytest.raises(ValidationFailed) as refused:
            services.integrations.save(new_system(), integration_body(directory, webhook_url=url,
                                                                      webhook_secret=SECRET))
        assert refused.value.field == "webhook_url", url
    assert receiver.requests == []


def test_a_loopback_webhook_saved_where_allowed_is_refused_at_delivery_where_not(room, receiver):
    """The delivery-time check stands on its own: a row pointing at loopback (saved by the local stack) is not
    delivered by an instance with loopback off."""
    room.book_in_outlook("Checked twice", 3)
    room.pull()
    receiver.wait_delivered()
    services = services_without_loopback()
    strict = WebhookService(services.repos, services.secrets, services.queues, services.alerts,
                            webhook_client(services.settings), max_attempts=1)
    outcome = strict.process({"system": room.system, "space": "r1", "from_seq": 1, "to_seq": room.feed()[-1]["seq"]})
    assert outcome == "given up after 1 attempts (blocked_address)"
    assert len(receiver.requests) == 1  # only the delivery the loopback-allowing app made


def test_a_name_that_rebinds_to_loopback_after_the_save_is_refused_at_delivery(api, simulator, directory, system,
                                                                               receiver):
    """DNS rebinding: the name resolves to a public address when saved, to 127.0.0.1 (where a receiver listens)
    when delivered. The delivery resolves again, refuses, and never connects."""
    connect(api, simulator, system, "space", "r1", directory.staff)
    assert api.patch(f"/api/systems/{system}/connections/space/r1",
                     json={"sync_resource": directory.room, "two_way": True}).status_code == 200
    room = Room(api, simulator, directory, system)
    room.pull()
    room.book_in_outlook("Rebound", 5)
    assert room.pull()["published"] == 1  # no webhook yet: nothing queued

    dns = Dns({"hooks.rebind.example": ["93.184.215.14"]})
    services = services_without_loopback(dns)
    url = f"https://hooks.rebind.example:{receiver.port}/hooks/outlook"
    saved, _ = services.integrations.save(system, integration_body(directory, webhook_url=url, webhook_secret=SECRET))
    assert saved["webhook"]["url"] == url and dns.asked == ["hooks.rebind.example"]  # checked, public: accepted

    dns.answers["hooks.rebind.example"] = ["127.0.0.1"]
    worker = WebhookService(services.repos, services.secrets, services.queues, services.alerts,
                            webhook_client(services.settings, dns), max_attempts=1)
    outcome = worker.process({"system": system, "space": "r1", "from_seq": 1, "to_seq": room.feed()[-1]["seq"]})
    assert outcome == "given up after 1 attempts (blocked_address)"
    assert dns.asked == ["hooks.rebind.example"] * 2  # resolved again at delivery
    assert receiver.requests == []
    (alert,) = room.alerts()
    assert "blocked_address" in alert["message"] and "127.0.0.1" not in alert["message"]


def test_a_redirect_is_not_followed(room, receiver, worker):
    elsewhere = Receiver()
    try:
        receiver.redirect_to = elsewhere.url
        room.book_in_outlook("Moved?", 7)
        room.pull()
        deadline = time.monotonic() + WAIT
        while not room.alerts() and time.monotonic() < deadline:
            time.sleep(0.2)
        (alert,) = room.alerts()
        assert "http_3xx" in alert["message"]
        assert [r.status for r in receiver.requests] == [307] * worker.max_attempts
        assert elsewhere.requests == []
    finally:
        shutdown(elsewhere.server)


def test_an_unreachable_endpoint_is_alerted_with_a_coarse_reason_only(room, receiver, worker):
    closed = free_port()  # nothing listens there
    url = f"http://localhost:{closed}/hooks"
    assert room.api.put(f"/api/systems/{room.system}/integration",
                        json=integration_body(room.directory, webhook_url=url)).status_code == 200
    room.book_in_outlook("Nobody home", 9)
    room.pull()
    deadline = time.monotonic() + WAIT
    while not room.alerts() and time.monotonic() < deadline:
        time.sleep(0.2)
    (alert,) = room.alerts()
    assert "connection_refused" in alert["message"]
    assert "localhost" in alert["message"]  # the host the admin set, not the address it resolved to, nor the port
    assert str(closed) not in alert["message"] and "127.0.0.1" not in alert["message"]
    assert "Errno" not in alert["message"]


def test_https_connects_to_the_checked_address_and_verifies_the_certificate_for_the_name(app, local_tls):
    """The local CA's certificate is for localhost/127.0.0.1: a delivery to https://localhost goes to the address
    that was checked with SNI and verification on "localhost"; the same address under another name fails TLS."""
    tls_receiver = Receiver(ssl_context=local_tls.server_context())
    try:
        dns = Dns({"localhost": ["127.0.0.1"], "hooks.example.edu": ["127.0.0.1"]})
        client = webhook_client(runtime.services().settings, dns)
        port = tls_receiver.port
        answer = client.post(f"https://localhost:{port}/in?token=t1", b"{}", {"Content-Type": "application/json"}, 5)
        assert (answer.status, answer.reason) == (204, "http_2xx")
        (seen,) = tls_receiver.requests
        assert seen.headers["Host"] == f"localhost:{port}" and seen.query == "token=t1"
        wrong = client.post(f"https://hooks.example.edu:{port}/in", b"{}", {}, 5)
        assert (wrong.status, wrong.reason) == (None, "tls_error")
        assert len(tls_receiver.requests) == 1
        assert dns.asked == ["localhost", "hooks.example.edu"]
    finally:
        shutdown(tls_receiver.server)


def test_the_webhook_urls_query_stays_out_of_logs_rows_and_responses(room, receiver, caplog, app,
                                                                     storage_connection_string):
    """The query may carry the receiver's token: it reaches the receiver and nothing else, even at DEBUG (the
    request line urllib3's pool logs), and is kept in Key Vault, shown as ?<redacted>."""
    from azure.data.tables import TableServiceClient

    caplog.set_level(logging.DEBUG)
    token = "tok" + os.urandom(12).hex()
    url = f"{receiver.url}?token={token}"
    saved = room.api.put(f"/api/systems/{room.system}/integration",
                         json=integration_body(room.directory, webhook_url=url))
    assert saved.status_code == 200, saved.text
    shown = f"{receiver.url}?<redacted>"
    assert saved.json()["webhook_url"] == shown and saved.json()["webhook"]["url"] == shown
    room.book_in_outlook("Token bearer", 10)
    room.pull()
    (delivered,) = receiver.wait_delivered()
    assert delivered.query == f"token={token}"  # the full URL was used

    again = room.api.put(f"/api/systems/{room.system}/integration",  # the shown URL sent back keeps the stored one
                         json=integration_body(room.directory, webhook_url=shown))
    assert again.status_code == 200, again.text
    room.book_in_outlook("Token bearer 2", 12)
    room.pull()
    assert receiver.wait_delivered(2)[-1].query == f"token={token}"
    fetched = room.api.get(f"/api/systems/{room.system}/integration")

    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        app.env["TABLE_PREFIX"] + "integrations")
    row = str(dict(table.get_entity(room.system, "integration")))
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert any("webhook" in r.getMessage() for r in caplog.records)
    for where, text in (("logs", caplog.text), ("row", row), ("PUT", saved.text + again.text),
                        ("GET", fetched.text)):
        assert token not in text, where

    fresh = room.api.put(f"/api/systems/{new_system()}/integration",
                         json=integration_body(room.directory, webhook_url=shown, webhook_secret=SECRET))
    assert fresh.status_code == 400 and "redacted" in fresh.json()["error"]["message"]
