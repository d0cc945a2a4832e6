"""Scenario helpers shared by integration and end-to-end tests: a Microsoft directory in the simulator, an
integration saved through the API, and the sign-in a person would do."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from simulator.directory import AUDIENCE_ORG_AND_PERSONAL, CONSUMERS_TENANT_ID
from simulator.testing import RunningSimulator, http_session, sign_in

RETURN_ORIGIN = "https://booking.example.edu"
RETURN_URL = f"{RETURN_ORIGIN}/admin/outlook?tab=sync"


@dataclass
class Directory:
    tenant_id: str
    domain: str
    staff: str  # a staff member's address
    staff_id: str
    other_staff: str
    room: str  # a room mailbox delegated to `staff`
    room_id: str
    other_room: str  # a room nobody was granted
    personal: str  # a personal Microsoft account
    client_id: str
    secret: str


def make_directory(simulator: RunningSimulator, redirect_uri: str, *, audience: str = AUDIENCE_ORG_AND_PERSONAL,
                   admin_consent_required: str | None = None) -> Directory:
    control = simulator.control
    domain = f"lib{uuid.uuid4().hex[:6]}.test"
    tenant = control.create_tenant("Springfield Library", domain, admin_consent_required=admin_consent_required)
    staff = control.create_user(tenant["id"], f"marge@{domain}", "Marge Simpson")
    other = control.create_user(tenant["id"], f"ned@{domain}", "Ned Flanders")
    room = control.create_room(tenant["id"], f"room-101@{domain}", "Room 101")
    other_room = control.create_room(tenant["id"], f"room-202@{domain}", "Room 202")
    control.grant_mailbox(staff["id"], room["id"], "full_access")
    personal = control.create_user(CONSUMERS_TENANT_ID, f"lisa.{domain.split('.')[0]}@outlook.test", "Lisa")
    app = control.create_app(tenant["id"], "Bookings", sign_in_audience=audience, redirect_uris=[redirect_uri],
                             secrets=[{"expires_in_days": 730}])
    return Directory(tenant["id"], domain, staff["address"], staff["id"], other["address"], room["address"],
                     room["id"], other_room["address"], personal["address"], app["client_id"],
                     app["secrets"][0]["value"])


def new_system() -> str:
    return "sys-" + uuid.uuid4().hex[:10]


def integration_body(d: Directory, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"client_id": d.client_id, "client_secret": d.secret, "account_type": "common",
                               "enabled": True, "allowed_return_origins": [RETURN_ORIGIN]}
    body.update(overrides)
    return body


def configure(api, system: str, d: Directory, **overrides: object) -> dict:
    response = api.put(f"/api/systems/{system}/integration", json=integration_body(d, **overrides))
    assert response.status_code in (200, 201), response.text
    return response.json()


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def authorize(api, system: str, kind: str, subject: str, **body: object) -> str:
    response = api.post(f"/api/systems/{system}/connections/{kind}/{subject}/authorize",
                        json={"return_url": RETURN_URL, **body})
    assert response.status_code == 201, response.text
    return response.json()["authorize_url"]


def follow_sign_in(api, simulator: RunningSimulator, start_url: str, account: str, *, consent: bool = True) -> str:
    """Browser steps without a browser: /oauth/start -> Microsoft's pages -> our callback; returns where the
    callback sends the browser (the host's return URL with the outcome)."""
    session = http_session(simulator.ca_path)
    session.headers.pop("x-functions-key", None)
    start = session.get(start_url, allow_redirects=False, timeout=30)
    assert start.status_code == 302, start.text
    params = sign_in(start.headers["Location"], account, ca_path=simulator.ca_path, consent=consent)
    callback = post_callback(api, params)
    assert callback.status_code == 303, callback.text
    return callback.headers["Location"]


def post_callback(api, params: dict[str, str]):
    """What the browser does with Microsoft's form_post response: POST the fields to the redirect URI."""
    return api.session.post(f"{api.base}/api/oauth/callback", data=params, allow_redirects=False, timeout=30)


def connect(api, simulator: RunningSimulator, system: str, kind: str, subject: str, account: str) -> dict[str, str]:
    landing = follow_sign_in(api, simulator, authorize(api, system, kind, subject), account)
    outcome = query_of(landing)
    assert outcome["outcome"] == "connected", outcome
    return outcome


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll until `predicate()` is truthy (its value is returned); for outcomes that arrive through queues, timers
    and notifications on their own threads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
