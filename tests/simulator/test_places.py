"""The Places API over real HTTPS with tokens from real MSAL: rooms and room lists of the caller's tenant only,
Place.Read.All in both modes, v1.0 paging (100 by default, `$top`/`$skip`, no nextLink) and hidden rooms."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.control import Control
from simulator.directory import CONSUMERS_TENANT_ID
from simulator.testing import RunningSimulator, http_session, sign_in
from tests.simulator.conftest import REDIRECT_URI, World

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]


@pytest.fixture
def places(control: Control, world: World) -> dict[str, Any]:
    hall = control.create_room(world.contoso, "hall@contoso.test", "Great Hall", capacity=120, building="Main",
                               floor_number=0, floor_label="G", is_wheelchair_accessible=True,
                               tags=["stage", "projector"], display_device_name="Projector")
    study = control.create_room(world.contoso, "study@contoso.test", "Study Room", capacity=4, building="Annex",
                                floor_number=2, booking_type="standard")
    loose = control.create_room(world.contoso, "loose@contoso.test", "Anteroom")
    foreign = control.create_room(world.fabrikam, "lab@fabrikam.test", "Fabrikam Lab", capacity=8)
    main = control.create_room_list(world.contoso, "main-rooms@contoso.test", "Main Building",
                                    [hall["address"], study["address"]])
    control.create_room_list(world.fabrikam, "fab-rooms@fabrikam.test", "Fabrikam Rooms", [foreign["address"]])
    return {"hall": hall, "study": study, "loose": loose, "foreign": foreign, "main": main}


def _app_token(world: World, control: Control, make_msal, roles: list[str] | None = ("Place.Read.All",)) -> str:
    made = control.create_app(world.contoso, "Room finder", application_permissions=list(roles or []))
    result = make_msal(made["client_id"], made["secrets"][0]["value"], world.contoso).acquire_token_for_client(
        GRAPH_DEFAULT)
    return result["access_token"]


def _get(simulator: RunningSimulator, token: str, path: str, **params: str) -> tuple[int, Any]:
    reply = http_session(simulator.ca_path).get(f"{simulator.url}/v1.0{path}", params=params,
                                                headers={"Authorization": f"Bearer {token}"})
    return reply.status_code, reply.json()


def test_rooms_with_their_documented_properties(simulator, world, control, make_msal, places):
    status, body = _get(simulator, _app_token(world, control, make_msal), "/places/microsoft.graph.room")

    assert status == 200
    assert body["@odata.context"] == f"{simulator.url}/v1.0/$metadata#places/microsoft.graph.room"
    assert "@odata.nextLink" not in body
    assert [r["emailAddress"] for r in body["value"]] == ["loose@contoso.test", "hall@contoso.test",
                                                          "study@contoso.test"]  # by display name; no Fabrikam
    hall = body["value"][1]
    assert hall == {
        "id": places["hall"]["id"], "displayName": "Great Hall", "emailAddress": "hall@contoso.test",
        "address": None, "geoCoordinates": None, "phone": "", "nickname": "Great Hall", "building": "Main",
        "floorNumber": 0, "floorLabel": "G", "label": None, "capacity": 120, "bookingType": "standard",
        "audioDeviceName": None, "videoDeviceName": None, "displayDeviceName": "Projector",
        "isWheelChairAccessible": True, "tags": ["stage", "projector"],
    }


def test_room_lists_and_the_rooms_in_one(simulator, world, control, make_msal, places):
    token = _app_token(world, control, make_msal)

    lists = _get(simulator, token, "/places/microsoft.graph.roomList")[1]
    members = _get(simulator, token, "/places/MAIN-ROOMS@contoso.test/microsoft.graph.roomlist/rooms")[1]
    by_id = _get(simulator, token, f"/places/{places['main']['id']}/microsoft.graph.roomlist/rooms")
    foreign = _get(simulator, token, "/places/fab-rooms@fabrikam.test/microsoft.graph.roomlist/rooms")

    assert lists["value"] == [{"id": places["main"]["id"], "displayName": "Main Building", "address": None,
                               "geoCoordinates": None, "phone": "", "emailAddress": "main-rooms@contoso.test"}]
    assert members["@odata.context"] == (f"{simulator.url}/v1.0/$metadata#places('main-rooms%40contoso.test')"
                                         "/microsoft.graph.roomList/rooms")
    assert [r["displayName"] for r in members["value"]] == ["Great Hall", "Study Room"]
    assert by_id[0] == 404  # "you must specify the room list by its emailAddress property, not by its id"
    assert foreign[0] == 404


def test_one_place_by_id_or_address(simulator, world, control, make_msal, places):
    token = _app_token(world, control, make_msal)

    room = _get(simulator, token, f"/places/{places['study']['id']}")[1]
    room_list = _get(simulator, token, "/places/main-rooms@contoso.test")[1]
    selected = _get(simulator, token, "/places/hall@contoso.test", **{"$select": "capacity,building"})[1]

    assert (room["@odata.type"], room["emailAddress"], room["capacity"]) == ("#microsoft.graph.room",
                                                                             "study@contoso.test", 4)
    assert room["@odata.context"] == f"{simulator.url}/v1.0/$metadata#places/$entity"
    assert (room_list["@odata.type"], room_list["displayName"]) == ("#microsoft.graph.roomList", "Main Building")
    assert selected == {"@odata.context": f"{simulator.url}/v1.0/$metadata#places/$entity",
                        "@odata.type": "#microsoft.graph.room", "id": places["hall"]["id"], "capacity": 120,
                        "building": "Main"}
    assert _get(simulator, token, "/places/lab@fabrikam.test")[0] == 404  # other tenants' rooms never show


def test_place_read_all_is_required(simulator, world, control, make_msal, places):
    token = _app_token(world, control, make_msal, roles=["Calendars.ReadWrite"])

    status, body = _get(simulator, token, "/places/microsoft.graph.room")

    assert (status, body["error"]["code"]) == (403, "ErrorAccessDenied")
    assert _get(simulator, token, f"/places/{places['hall']['id']}")[0] == 403


def test_a_signed_in_user_with_place_read_all_sees_the_rooms(simulator, world, make_msal, places, control):
    control.admin_consent(world.contoso, world.org_app.client_id)  # delegated Place.Read.All needs an admin's consent
    client = make_msal(world.org_app.client_id, world.org_app.secret, "organizations")
    flow = client.initiate_auth_code_flow(["Place.Read.All"], redirect_uri=REDIRECT_URI)
    params = sign_in(flow["auth_uri"], world.alice, ca_path=simulator.ca_path)
    token = client.acquire_token_by_auth_code_flow(flow, params)["access_token"]

    status, body = _get(simulator, token, "/places/microsoft.graph.room")

    assert status == 200 and len(body["value"]) == 3
    without = simulator.sim.tokens.issue(client_id=world.org_app.client_id, tenant_id=world.contoso,
                                         user_id=world.ids[world.alice], scopes=frozenset({"User.Read"})).token
    assert _get(simulator, without, "/places/microsoft.graph.room")[0] == 403


def test_paging_is_v1_paging(simulator, world, control, make_msal):
    for n in range(105):
        control.create_room(world.contoso, f"r{n:03d}@contoso.test", f"Room {n:03d}")
    token = _app_token(world, control, make_msal)

    first = _get(simulator, token, "/places/microsoft.graph.room", **{"$count": "true"})[1]
    tail = _get(simulator, token, "/places/microsoft.graph.room", **{"$top": "10", "$skip": "100"})[1]

    assert (len(first["value"]), first["@odata.count"], "@odata.nextLink" in first) == (100, 105, False)
    assert [r["displayName"] for r in tail["value"]] == [f"Room {n:03d}" for n in range(100, 105)]
    for bad in ({"$top": "0"}, {"$skip": "-1"}, {"$filter": "capacity ge 10"}, {"$orderby": "displayName"}):
        status, body = _get(simulator, token, "/places/microsoft.graph.room", **bad)
        assert status == 400, bad
        assert body["error"]["message"]


def test_rooms_hidden_from_the_address_lists_are_not_listed(simulator, world, control, make_msal, places):
    control.set_mailbox_attributes("loose@contoso.test", HiddenFromAddressListsEnabled=True)
    token = _app_token(world, control, make_msal)

    names = [r["displayName"] for r in _get(simulator, token, "/places/microsoft.graph.room")[1]["value"]]

    assert names == ["Great Hall", "Study Room"]
    assert _get(simulator, token, "/places/loose@contoso.test")[0] == 404


def test_personal_accounts_have_no_places(simulator, world, places):
    token = simulator.sim.tokens.issue(client_id=world.common_app.client_id, tenant_id=CONSUMERS_TENANT_ID,
                                       user_id=world.ids[world.pat], scopes=frozenset({"Place.Read.All"})).token
    assert _get(simulator, token, "/places/microsoft.graph.room")[0] == 403
