"""After a full run (integration saved, a user and a space connected, calendars chosen, a webhook delivered to a
live receiver whose URL carries a token, a token sweep with refreshes, failures and alerts), no table row, log line
or response holds a secret or token in clear."""

from __future__ import annotations

import logging
import os
import secrets as random_secrets
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from devstack.ports import free_port
from devstack.serving import serve_in_thread, shutdown
from shared.runtime import build_services
from shared.secrets import TXN_KEY_SECRET_NAME
from shared.settings import Settings
from tests.helpers import configure, connect, make_directory, new_system


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name} {text}")


@pytest.fixture
def receiver():
    """A host's webhook endpoint: records the query string of every POST and answers 204."""
    queries: list[str] = []
    seen = threading.Event()

    def endpoint(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        queries.append(environ.get("QUERY_STRING", ""))
        seen.set()
        start_response("204 No Content", [])
        return [b""]

    server = serve_in_thread(endpoint, free_port(), name="leak-scan-receiver")
    yield server.server_port, queries, seen
    shutdown(server)


@pytest.fixture
def logs():
    capture = Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)  # stricter than production (Information): every library's debug output too
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous)


def test_no_secret_or_token_in_rows_logs_or_responses(api, app, simulator, logs, storage_connection_string,
                                                      receiver):
    responses: list[str] = []
    api.session.hooks["response"].append(
        lambda r, *a, **k: responses.append(f"{r.status_code} {dict(r.headers)} {r.text}"))
    tokens: set[str] = set()

    def harvest() -> None:
        tokens.update(simulator.sim.tokens.issued())
        tokens.update(simulator.sim.identity.refresh_tokens)
        tokens.update(simulator.sim.identity.codes)

    d = make_directory(simulator, app.redirect_uri)
    system = new_system()
    webhook_secret = "whsec-" + "k3y" * 12
    port, queries, delivered = receiver
    url_token = "urltok-" + random_secrets.token_hex(16)  # a receiver's token in the webhook URL's query
    configure(api, system, d, client_secret_expires_on="2030-01-01",
              webhook_url=f"http://127.0.0.1:{port}/hooks?token={url_token}", webhook_secret=webhook_secret)
    api.put(f"/api/systems/{system}/integration", json={"client_id": d.client_id, "account_type": "common",
                                                        "client_secret": "wrong-secret-value-123"})
    connect(api, simulator, system, "user", "u1", d.staff)
    api.patch(f"/api/systems/{system}/connections/user/u1", json={"freebusy_calendar_id": None})  # subscribed
    client_states = {s["clientState"] for s in simulator.control.list_subscriptions(d.tenant_id)}
    assert len(client_states) == 1
    simulator.sim.graph.create_event(d.staff, {  # a change notification carrying the clientState to the app
        "subject": "Staff meeting", "start": {"dateTime": "2030-02-03T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-02-03T10:00:00", "timeZone": "UTC"}}, as_user=d.staff)
    assert simulator.control.flush_notifications(10)["flushed"]
    connect(api, simulator, system, "space", "s1", d.staff)
    api.patch(f"/api/systems/{system}/connections/space/s1", json={"sync_resource": d.room})
    calendar = api.get(f"/api/systems/{system}/connections/space/s1/calendars").json()["calendars"][0]
    api.patch(f"/api/systems/{system}/connections/space/s1", json={"sync_calendar_id": calendar["id"]})
    api.patch(f"/api/systems/{system}/connections/space/s1", json={"sync_resource": d.other_room})
    api.patch(f"/api/systems/{system}/connections/space/s1", json={"sync_resource": d.room, "two_way": True,
                                                                   "location": "main"})
    api.put(f"/api/systems/{system}/locations/main", json={"title_mode": "patron_name", "populate_creator": True})
    shift = {"title": "Desk", "occurrences": [{"key": "a", "start": "2030-02-01T09:00:00",
                                                "end": "2030-02-01T10:00:00", "time_zone": "UTC"}]}
    api.put(f"/api/systems/{system}/connections/user/u1/items/s-1", json=shift)
    api.post(f"/api/systems/{system}/connections/user/u1/exports",
             json={"mode": "all", "items": [{"item": f"b-{i}", **shift} for i in range(5)]})
    simulator.sim.graph.create_event(d.room, {
        "subject": "Made in Outlook", "start": {"dateTime": "2030-02-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-02-02T10:00:00", "timeZone": "UTC"}}, as_user=d.other_staff)
    puller = build_services(Settings.from_env(os.environ)).pull
    puller.pull(system, "s1")  # the baseline
    soon = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT09:00:00")  # inside the pull's horizon
    simulator.sim.graph.create_event(d.room, {
        "subject": "Also made in Outlook", "start": {"dateTime": soon, "timeZone": "UTC"},
        "end": {"dateTime": soon.replace("T09", "T10"), "timeZone": "UTC"}}, as_user=d.other_staff)
    assert puller.pull(system, "s1")["published"] == 1
    assert delivered.wait(30), "the webhook was not delivered"  # by the app's queue worker, logging at DEBUG
    assert queries == [f"token={url_token}"]
    api.get(f"/api/systems/{system}/connections/space/s1/external-events?cursor=0")
    api.get(f"/api/systems/{system}/connections/user/u1/freebusy?start=2030-02-01T00:00:00Z&end=2030-02-03T00:00:00Z")
    harvest()

    timed = build_services(Settings.from_env(os.environ), clock=simulator.sim.clock.now)
    simulator.control.revoke_sessions(d.other_staff)  # nobody of ours: no effect
    simulator.control.advance_clock(days=31)
    timed.token_health.sweep()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and api.get(
            f"/api/systems/{system}/connections/user/u1").json()["token_refreshed_at"] is None:
        time.sleep(0.2)
    time.sleep(2)  # let the queue worker finish both refreshes
    harvest()
    simulator.control.revoke_sessions(d.staff)
    simulator.control.advance_clock(days=31)
    timed.token_health.sweep()
    time.sleep(3)
    api.get(f"/api/systems/{system}/alerts")
    api.get(f"/api/systems/{system}/integration")
    api.delete(f"/api/systems/{system}/connections/user/u1")
    harvest()

    data_key = timed.secrets.get(timed.settings.data_key_secret_name).value
    txn_key = timed.secrets.get(TXN_KEY_SECRET_NAME).value  # exists: the run exported events
    system_key = api.system_key(system)
    assert system_key and system_key.startswith("sk_")  # answered once, to the provisioning request only
    secrets = {"client secret": d.secret, "data key": data_key, "wrong secret": "wrong-secret-value-123",
               "webhook secret": webhook_secret, "transactionId key": txn_key, "webhook URL token": url_token,
               "system key": system_key, **{f"subscription clientState {c[:6]}…": c for c in client_states}}
    assert len(tokens) >= 6  # codes, access and refresh tokens of two connections and their rotations
    needles = {**secrets, **{f"token {t[:12]}…": t for t in tokens}}

    rows: list[str] = []
    service = TableServiceClient.from_connection_string(storage_connection_string)
    for table in service.list_tables():
        if table.name.startswith(app.env["TABLE_PREFIX"]):
            rows.extend(str(dict(e)) for e in service.get_table_client(table.name).list_entities())
    assert len(rows) >= 5 and len(responses) >= 10 and len(logs.lines) >= 10

    leaks = [f"{name} in {where}" for name, needle in needles.items()
             for where, haystack in (("tables", rows), ("logs", logs.lines), ("responses", responses))
             if any(needle in text for text in haystack)]
    assert leaks == []
