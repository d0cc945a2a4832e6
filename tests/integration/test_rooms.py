"""Room discovery through the HTTP API: the directory's rooms and room lists from the simulator's Places API, with
the app's own token (app access) or through a signed-in connection (delegated Place.Read.All)."""

from collections import Counter

import pytest

from tests.helpers import authorize, configure, connect, follow_sign_in, new_system, query_of


@pytest.fixture
def places(simulator, directory):
    """Rooms with their Places attributes, a room list of two of them, and a room hidden from the address lists."""
    control, tenant, domain = simulator.control, directory.tenant_id, directory.domain
    control.create_room(tenant, f"hall@{domain}", "Great Hall", capacity=120, building="Main", floor_number=0,
                        floor_label="Ground")
    control.create_room(tenant, f"study-a@{domain}", "Study A", capacity=4, building="Library", floor_number=2)
    control.create_room(tenant, f"secret@{domain}", "Secret Room")
    control.set_mailbox_attributes(f"secret@{domain}", HiddenFromAddressListsEnabled=True)
    control.create_room_list(tenant, f"library@{domain}", "Library rooms", [f"study-a@{domain}", directory.room])
    return directory


@pytest.fixture
def app_system(api, simulator, places):
    simulator.control.grant_app_permissions(places.tenant_id, places.client_id, ["Place.Read.All"])
    system = new_system()
    configure(api, system, places, app_access={"enabled": True, "tenant_id": places.tenant_id})
    return system


def rooms(api, system, **params):
    return api.get(f"/api/systems/{system}/rooms", params=params)


def test_rooms_are_listed_for_a_dropdown_with_the_apps_token(api, places, app_system):
    response = rooms(api, app_system)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["mode"], body["via"], body["room_list"], body["truncated"]) == ("app", None, None, False)
    assert [r["display_name"] for r in body["rooms"]] == ["Great Hall", "Room 101", "Room 202", "Study A"]
    assert body["count"] == 4  # the hidden room is not listed
    hall = body["rooms"][0]
    assert hall == {"address": f"hall@{places.domain}", "display_name": "Great Hall", "capacity": 120,
                    "building": "Main", "floor": 0, "floor_label": "Ground"}


def test_room_lists_filter_the_rooms(api, places, app_system):
    lists = api.get(f"/api/systems/{app_system}/room-lists")
    assert lists.status_code == 200, lists.text
    assert lists.json()["room_lists"] == [{"address": f"library@{places.domain}", "display_name": "Library rooms"}]
    filtered = rooms(api, app_system, room_list=f"library@{places.domain}").json()
    assert filtered["room_list"] == f"library@{places.domain}"
    assert [r["address"] for r in filtered["rooms"]] == [places.room, f"study-a@{places.domain}"]

    unknown = rooms(api, app_system, room_list=f"nowhere@{places.domain}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "room_list_not_found"
    bad = rooms(api, app_system, room_list="not an address")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "room_list"


def test_every_page_is_read(api, simulator, places, app_system):
    for n in range(230):
        simulator.control.create_room(places.tenant_id, f"pod-{n:03d}@{places.domain}", f"Pod {n:03d}")
    before = simulator.sim.counters.snapshot()["counts"].get("graph.places.rooms", 0)
    body = rooms(api, app_system).json()
    assert body["count"] == 234 and not body["truncated"]
    assert len({r["address"] for r in body["rooms"]}) == 234
    assert simulator.sim.counters.snapshot()["counts"]["graph.places.rooms"] - before == 3  # 100 + 100 + 34


def test_without_place_read_all_the_answer_names_the_permission(api, simulator, places):
    system = new_system()  # app access, but no Place.Read.All granted in the directory
    configure(api, system, places, app_access={"enabled": True, "tenant_id": places.tenant_id})
    response = rooms(api, system)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["code"], error["microsoft_code"]) == ("place_permission_missing", "ErrorAccessDenied")
    assert "Place.Read.All" in error["message"] and places.tenant_id in error["message"]


def test_without_app_access_a_connection_must_be_named(api, places, system):
    response = rooms(api, system)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "room_discovery_unavailable"
    assert "via=" in response.json()["error"]["message"]
    for via, status, code in (("robot/x", 400, "validation_failed"), ("space/", 400, "validation_failed"),
                              ("space/nobody", 404, "connection_not_found")):
        answer = rooms(api, system, via=via)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), via


# --- delegated ------------------------------------------------------------------------------------------------


def test_a_space_sign_in_asks_for_place_read_all_when_delegated_discovery_is_on(api, simulator, places):
    system = new_system()
    configure(api, system, places, room_discovery={"delegated": True})
    # Delegated Place.Read.All needs an administrator's consent: before it, the sign-in stops at "Need admin approval".
    refused = query_of(follow_sign_in(api, simulator, authorize(api, system, "space", "s1"), places.staff))
    assert (refused["outcome"], refused["microsoft_code"]) == ("admin_approval_required", "AADSTS90094"), refused
    assert api.get(f"/api/systems/{system}/connections/space/s1").status_code == 404
    simulator.control.admin_consent(places.tenant_id, places.client_id)
    connect(api, simulator, system, "space", "s1", places.staff)
    response = rooms(api, system, via="space/s1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["mode"], body["via"], body["count"]) == ("delegated", "space/s1", 4)
    lists = api.get(f"/api/systems/{system}/room-lists", params={"via": "space/s1"}).json()
    assert [r["display_name"] for r in lists["room_lists"]] == ["Library rooms"]
    # The Places token came from the connection's refresh token; sync kept its own scopes.
    assert api.get(f"/api/systems/{system}/connections/space/s1/calendars").status_code == 200


def test_a_sign_in_without_place_read_all_is_403_and_the_connection_stays_fine(api, simulator, places, system,
                                                                              staff):
    response = rooms(api, system, via="user/u1")
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["code"], error["microsoft_code"]) == ("place_permission_missing", "AADSTS65001")
    assert "Place.Read.All" in error["message"] and "admin" in error["message"]
    status = api.get(f"/api/systems/{system}/connections/user/u1").json()
    assert status["status"] == "connected"
    assert api.get(f"/api/systems/{system}/alerts").json()["alerts"] == []


def test_an_administrators_tenant_wide_consent_covers_a_sign_in_that_did_not_ask(api, simulator, places, system,
                                                                                 staff):
    # (Not in the test above: MSAL answers an identical refused token request from its cache for 60 s.)
    simulator.control.admin_consent(places.tenant_id, places.client_id)
    response = rooms(api, system, via="user/u1")
    assert response.status_code == 200, response.text
    assert (response.json()["mode"], response.json()["count"]) == ("delegated", 4)


def test_an_app_mode_connection_named_as_via_lists_with_the_apps_token(api, simulator, places, app_system):
    simulator.control.create_management_scope(places.tenant_id, "Rooms", "RecipientTypeDetails -eq 'RoomMailbox'")
    simulator.control.assign_management_role(places.tenant_id, places.client_id, "Application Calendars.ReadWrite",
                                             "Rooms")
    put = api.put(f"/api/systems/{app_system}/connections/space/r1", json={"mode": "app",
                                                                           "sync_resource": places.room})
    assert put.status_code == 201, put.text
    before = Counter(simulator.sim.counters.snapshot()["counts"])
    body = rooms(api, app_system, via="space/r1").json()
    assert (body["mode"], body["via"], body["count"]) == ("app", "space/r1", 4)
    used = Counter(simulator.sim.counters.snapshot()["counts"]) - before
    assert used.get("identity.token.refresh_token.ok", 0) == 0
