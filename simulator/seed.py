"""The demo world for the local run command: one library tenant with staff and rooms, a personal account, and
an app registration whose redirect URI is the local callback.

IDs are fixed so the README and a person's notes stay valid across restarts; only the client secret is new
each time, as a real one would be.
"""

from __future__ import annotations

from typing import Any

from simulator.control import Control
from simulator.core import Simulator
from simulator.directory import AUDIENCE_ORG_AND_PERSONAL, CONSUMERS_TENANT_ID

DEMO_TENANT_ID = "5b7a1c0e-3f42-4d8e-9a61-0c2f4e8d1a37"
DEMO_CLIENT_ID = "3c9d2e71-8a4b-4f06-b5d3-7e1f0a6c9b24"
DEMO_DOMAIN = "springfield-library.test"
SECRET_LIFETIME_DAYS = 730  # the 24 months the portal commonly offers


def seed_demo(sim: Simulator, redirect_uri: str) -> dict[str, Any]:
    control = Control(sim)
    tenant = control.create_tenant("Springfield Public Library", DEMO_DOMAIN, tenant_id=DEMO_TENANT_ID)
    staff = [
        control.create_user(DEMO_TENANT_ID, f"marge@{DEMO_DOMAIN}", "Marge Simpson",
                            user_id="a1d3f5b7-1111-4c2e-8f00-000000000001"),
        control.create_user(DEMO_TENANT_ID, f"ned@{DEMO_DOMAIN}", "Ned Flanders",
                            user_id="a1d3f5b7-1111-4c2e-8f00-000000000002"),
    ]
    rooms = [
        control.create_room(DEMO_TENANT_ID, f"meeting-room@{DEMO_DOMAIN}", "Meeting Room",
                            user_id="b2e4a6c8-2222-4d3f-9a00-000000000001"),
        control.create_room(DEMO_TENANT_ID, f"study-room@{DEMO_DOMAIN}", "Study Room",
                            user_id="b2e4a6c8-2222-4d3f-9a00-000000000002"),
    ]
    delegation = control.grant_mailbox(staff[0]["id"], rooms[0]["id"], "full_access")
    personal = control.create_user(CONSUMERS_TENANT_ID, "lisa.simpson@outlook.test", "Lisa Simpson",
                                   user_id="c3f5b7d9-3333-4e40-ab00-000000000001")
    app = control.create_app(
        DEMO_TENANT_ID,
        "Springfield Bookings (demo)",
        client_id=DEMO_CLIENT_ID,
        sign_in_audience=AUDIENCE_ORG_AND_PERSONAL,
        redirect_uris=[redirect_uri],
        secrets=[{"expires_in_days": SECRET_LIFETIME_DAYS}],
        application_permissions=["Calendars.ReadWrite", "User.Read.All"],
    )
    secret = app["secrets"][0]
    return {
        "tenant_id": tenant["id"],
        "tenant_name": tenant["name"],
        "tenant_domain": tenant["domain"],
        "client_id": app["client_id"],
        "client_secret": secret["value"],
        "client_secret_expires_at": secret["expires_at"],
        "supported_account_type": "common",
        "redirect_uri": redirect_uri,
        "staff": [{"address": s["address"], "id": s["id"]} for s in staff],
        "rooms": [{"address": r["address"], "id": r["id"]} for r in rooms],
        "delegations": [{"user": staff[0]["address"], "room": rooms[0]["address"],
                         "permission": delegation["permission"]}],
        "personal_accounts": [{"address": personal["address"], "id": personal["id"]}],
    }
