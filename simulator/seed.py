"""The demo world for the local run command: one library tenant with staff, rooms in a room list, a personal
account, and an app registration whose redirect URI is the local callback.

The app's app-only access to rooms is the product's recommended set-up: Entra application permissions only for
room discovery (Place.Read.All) and users (User.Read.All), and calendar access through Exchange RBAC for
Applications, an "Application Calendars.ReadWrite" role assignment limited to the management scope "Rooms"
(RecipientTypeDetails -eq 'RoomMailbox'), so staff mailboxes stay closed to it.

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


ROOMS_SCOPE = "Rooms"
ROOMS_FILTER = "RecipientTypeDetails -eq 'RoomMailbox'"
ROOMS_ROLE = "Application Calendars.ReadWrite"
APP_PERMISSIONS = ["Place.Read.All", "User.Read.All"]
MAIN, BRANCH = "Springfield Main Library", "Evergreen Terrace Branch"


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
                            user_id="b2e4a6c8-2222-4d3f-9a00-000000000001", capacity=12, building=MAIN,
                            floor_number=1, display_device_name="Wall screen"),
        control.create_room(DEMO_TENANT_ID, f"study-room@{DEMO_DOMAIN}", "Study Room",
                            user_id="b2e4a6c8-2222-4d3f-9a00-000000000002", capacity=4, building=MAIN,
                            floor_number=2),
        control.create_room(DEMO_TENANT_ID, f"community-hall@{DEMO_DOMAIN}", "Community Hall",
                            user_id="b2e4a6c8-2222-4d3f-9a00-000000000003", capacity=80, building=MAIN,
                            floor_number=0, is_wheelchair_accessible=True, tags=["stage", "kitchen"]),
        control.create_room(DEMO_TENANT_ID, f"maker-space@{DEMO_DOMAIN}", "Maker Space",
                            user_id="b2e4a6c8-2222-4d3f-9a00-000000000004", capacity=10, building=BRANCH,
                            floor_number=0, is_wheelchair_accessible=True, tags=["3D printer"]),
    ]
    room_list = control.create_room_list(DEMO_TENANT_ID, f"springfield-rooms@{DEMO_DOMAIN}", "Springfield Rooms",
                                         [r["address"] for r in rooms],
                                         list_id="d4a6c8e0-4444-4f51-bc00-000000000001")
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
        application_permissions=APP_PERMISSIONS,  # granted in the home tenant; no tenant-wide calendar role
    )
    scope = control.create_management_scope(DEMO_TENANT_ID, ROOMS_SCOPE, ROOMS_FILTER)
    assignment = control.assign_management_role(DEMO_TENANT_ID, DEMO_CLIENT_ID, ROOMS_ROLE, ROOMS_SCOPE)
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
        "room_lists": [{"address": room_list["address"], "id": room_list["id"], "display_name": "Springfield Rooms",
                        "rooms": room_list["rooms"]}],
        "delegations": [{"user": staff[0]["address"], "room": rooms[0]["address"],
                         "permission": delegation["permission"]}],
        "personal_accounts": [{"address": personal["address"], "id": personal["id"]}],
        "app_only": {
            "application_permissions": list(APP_PERMISSIONS),
            "management_scope": {"name": scope["name"], "recipient_filter": scope["recipient_filter"]},
            "role_assignment": {"role": assignment["role"], "scope": assignment["scope"]},
        },
    }
