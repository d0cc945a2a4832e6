"""The control API over HTTP, the demo seed, and the `python -m simulator` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.ports import free_port
from simulator.seed import DEMO_CLIENT_ID, DEMO_TENANT_ID
from simulator.testing import confidential_client, http_session, sign_in

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
REPO = Path(__file__).resolve().parents[2]


def _call(simulator, method, path, json=None):
    return http_session(simulator.ca_path).request(method, f"{simulator.url}/_control{path}", json=json)


def test_build_a_directory_over_http(simulator):
    tenant = _call(simulator, "POST", "/tenants", {"name": "Contoso", "domain": "contoso.test",
                                                   "admin_consent_required": "90094"})
    assert tenant.status_code == 201
    tid = tenant.json()["id"]
    user = _call(simulator, "POST", f"/tenants/{tid}/users", {"address": "a@contoso.test", "display_name": "A"})
    room = _call(simulator, "POST", "/tenants/contoso.test/rooms", {"address": "r@contoso.test",
                                                                    "display_name": "Room"})
    app = _call(simulator, "POST", "/apps", {"tenant": tid, "display_name": "Bookings",
                                             "redirect_uris": ["https://app.test/cb"],
                                             "secrets": [{"expires_in_days": 10}]})
    client_id = app.json()["client_id"]
    grant = _call(simulator, "POST", "/mailbox-grants", {"grantee": "a@contoso.test", "mailbox": "r@contoso.test",
                                                         "permission": "full_access"})
    consent = _call(simulator, "POST", f"/tenants/{tid}/admin-consents", {"client_id": client_id})

    assert [r.status_code for r in (user, room, app, grant, consent)] == [201, 201, 201, 201, 201]
    assert app.json()["secrets"][0]["value"]
    state = _call(simulator, "GET", "/state").json()
    assert {u["address"]: u["kind"] for u in state["users"]} == {"a@contoso.test": "user", "r@contoso.test": "room"}
    assert state["mailbox_grants"] == [{"grantee_id": user.json()["id"], "mailbox_id": room.json()["id"],
                                        "permission": "full_access"}]
    [contoso] = [t for t in state["tenants"] if t["id"] == tid]
    assert contoso["admin_consented"] == [client_id]
    assert "..." in state["apps"][0]["secrets"][0]["hint"]  # values are never listed again


def test_identity_events_over_http(simulator):
    tid = _call(simulator, "POST", "/tenants", {"name": "C", "domain": "c.test"}).json()["id"]
    _call(simulator, "POST", f"/tenants/{tid}/users", {"address": "u@c.test", "display_name": "U"})

    advanced = _call(simulator, "POST", "/clock/advance", {"days": 2, "seconds": 30})
    disabled = _call(simulator, "POST", "/users/u@c.test/disable")
    revoked = _call(simulator, "POST", "/users/u@c.test/revoke-sessions")
    withdrawn = _call(simulator, "DELETE", "/users/u@c.test/consents/some-client")

    assert advanced.json()["offset_seconds"] == pytest.approx(2 * 86_400 + 30)
    assert [r.status_code for r in (disabled, revoked, withdrawn)] == [200, 200, 200]
    assert simulator.sim.directory.find_user("u@c.test").enabled is False


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/tenants/nowhere.test/users", {"address": "x@y", "display_name": "X"}, 404),
        ("POST", "/tenants", {"name": "missing domain"}, 400),
        ("POST", "/tenants", {"name": "N", "domain": "n.test", "admin_consent_required": "12345"}, 400),
        ("POST", "/users/ghost@nowhere.test/disable", None, 404),
        ("GET", "/no-such-route", None, 404),
    ],
)
def test_control_errors_are_json(simulator, method, path, body, status):
    response = _call(simulator, method, path, body)
    assert response.status_code == status
    assert response.json()["error"]["code"]


def test_duplicate_address_is_a_conflict(simulator):
    tid = _call(simulator, "POST", "/tenants", {"name": "C", "domain": "c.test"}).json()["id"]
    body = {"address": "u@c.test", "display_name": "U"}
    assert _call(simulator, "POST", f"/tenants/{tid}/users", body).status_code == 201
    assert _call(simulator, "POST", f"/tenants/{tid}/users", body).status_code == 409


def test_reset_over_http_gives_a_fresh_simulator(simulator):
    _call(simulator, "POST", "/tenants", {"name": "C", "domain": "c.test"})
    assert _call(simulator, "POST", "/reset").status_code == 200
    tenants = _call(simulator, "GET", "/state").json()["tenants"]
    assert [t["domain"] for t in tenants] == ["outlook.com"]
    assert simulator.sim is simulator._app.sim  # the handle follows the server's Simulator


def test_seeded_demo_signs_in_with_msal(simulator):
    seeded = _call(simulator, "POST", "/seed-demo", {"redirect_uri": "https://localhost:7071/api/oauth/callback"})
    assert seeded.status_code == 201
    demo = seeded.json()
    assert (demo["client_id"], demo["tenant_id"]) == (DEMO_CLIENT_ID, DEMO_TENANT_ID)
    assert demo["delegations"] == [{"user": "marge@springfield-library.test",
                                    "room": "meeting-room@springfield-library.test", "permission": "full_access"}]

    client = confidential_client(simulator, demo["client_id"], demo["client_secret"], "common")
    flow = client.initiate_auth_code_flow(["Calendars.ReadWrite"], redirect_uri=demo["redirect_uri"])
    for account in ("marge@springfield-library.test", demo["personal_accounts"][0]["address"]):
        params = sign_in(flow["auth_uri"], account, ca_path=simulator.ca_path)
        assert "code" in params
    assert "access_token" in client.acquire_token_by_auth_code_flow(flow, params)


def test_run_command_serves_until_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port), "--tls-dir", str(tmp_path / "tls"),
         "--seed-demo", "--redirect-uri", "https://localhost:7071/api/oauth/callback"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.strip() == f"Simulator listening on https://127.0.0.1:{port}", first
        ca_line = process.stdout.readline()
        assert ca_line.startswith("CA certificate: ")
        ca_path = Path(ca_line.split(": ", 1)[1].strip())
        doc = http_session(ca_path).get(f"https://127.0.0.1:{port}/{DEMO_TENANT_ID}/v2.0/.well-known/"
                                        "openid-configuration", timeout=5)
        assert doc.json()["issuer"].endswith(f"/{DEMO_TENANT_ID}/v2.0")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
