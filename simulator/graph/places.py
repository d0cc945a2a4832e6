"""The Places API (v1.0): rooms and room lists of the caller's tenant, as the docs describe them.

- `GET /places/microsoft.graph.room`, `GET /places/microsoft.graph.roomlist`,
  `GET /places/{room-list-emailAddress}/microsoft.graph.roomlist/rooms` (the room list by its email address, not
  its id), `GET /places/{id or emailAddress}`: https://learn.microsoft.com/graph/api/place-list and
  https://learn.microsoft.com/graph/api/place-get
- `Place.Read.All` (delegated, work or school accounts only, or application) is required; `Place.ReadWrite.All`
  includes it. Without it: 403 `ErrorAccessDenied`. Only the caller's tenant is ever visible.
- Rooms hidden from the address lists are not returned ("Rooms that are marked 'Hidden from GAL' can't be
  retrieved through this endpoint").
- Paging as v1.0 does it: 100 places per page by default, `$top` sets the page size, `$skip` offsets,
  `$count=true` adds `@odata.count`; v1.0 returns no `@odata.nextLink` here (a client pages with `$skip` until a
  page comes back short: https://learn.microsoft.com/answers/questions/1021419), so a client that reads one page
  sees at most `$top` rooms. `$select` is honoured; `$filter` and other options are refused as unsupported by
  the simulator rather than ignored.
- Properties are those of https://learn.microsoft.com/graph/api/resources/room and
  https://learn.microsoft.com/graph/api/resources/roomlist; list items carry no `@odata.type` (the cast names
  it), a single place does.
- Places requests skip the per-mailbox throttling and fault injection of calendar requests (no mailbox).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from simulator.directory import Place, RoomList, User
from simulator.graph.auth import Caller, authenticate
from simulator.graph.errors import GraphError, access_denied, bad_request, item_not_found, not_routable
from simulator.graph.events import parse_select
from simulator.graph.http import GraphRequest, GraphResponse
from simulator.graph.state import GraphState

DEFAULT_PAGE = 100
ROOM = "microsoft.graph.room"
ROOM_LIST = "microsoft.graph.roomlist"
_ALLOWED_OPTIONS = ("$top", "$skip", "$count", "$select")


def handles(path: str) -> bool:
    segs = [s for s in path.split("/") if s]
    return bool(segs) and segs[0].lower() == "places"


def serve(state: GraphState, req: GraphRequest) -> GraphResponse:
    """One Places request; raises GraphError for every failure (the router shapes it)."""
    caller = authenticate(state.sim, req)
    segs = [s for s in req.path.split("/") if s][1:]
    low = [s.lower() for s in segs]
    if req.method != "GET":  # Update place (PATCH) is not modelled
        raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
    if low == [ROOM]:
        kind = "graph.places.rooms"
    elif low == [ROOM_LIST]:
        kind = "graph.places.roomlists"
    elif len(segs) == 3 and low[1:] == [ROOM_LIST, "rooms"]:
        kind = "graph.places.roomlist_rooms"
    elif len(segs) == 1:
        kind = "graph.places.get"
    else:
        raise not_routable(req.method, req.path)
    _check_permission(state, caller)
    state.counters.incr(kind)
    tenant_id = caller.grant.tenant_id
    base = req.base_url
    if kind == "graph.places.rooms":
        return _page(req, [_room(r) for r in _rooms(state, tenant_id)], f"{base}/$metadata#places/{ROOM}")
    if kind == "graph.places.roomlists":
        lists = _room_lists(state, tenant_id)
        return _page(req, [_room_list(r) for r in lists], f"{base}/$metadata#places/microsoft.graph.roomList")
    if kind == "graph.places.roomlist_rooms":
        found = _room_list_by_address(state, tenant_id, segs[0])
        rooms = [r for r in _rooms(state, tenant_id) if r.id in found.room_ids]
        context = f"{base}/$metadata#places('{quote(found.address, safe='')}')/microsoft.graph.roomList/rooms"
        return _page(req, [_room(r) for r in rooms], context)
    return _get(state, req, tenant_id, segs[0])


def _check_permission(state: GraphState, caller: Caller) -> None:
    if caller.user is not None:
        tenant = state.sim.directory.tenants.get(caller.user.tenant_id)
        if tenant is None or tenant.personal:  # "Delegated (personal Microsoft account): Not supported"
            raise access_denied()
    if not caller.has("Place.Read.All", "Place.ReadWrite.All"):
        raise access_denied()


def _rooms(state: GraphState, tenant_id: str) -> list[User]:
    directory = state.sim.directory
    with directory.lock:
        rooms = [u for u in directory.users.values()
                 if u.kind == "room" and u.tenant_id == tenant_id and not u.attributes.get(
                     "HiddenFromAddressListsEnabled")]
    return sorted(rooms, key=lambda r: (r.display_name.lower(), r.address.lower()))


def _room_lists(state: GraphState, tenant_id: str) -> list[RoomList]:
    directory = state.sim.directory
    with directory.lock:
        found = [r for r in directory.room_lists.values() if r.tenant_id == tenant_id]
    return sorted(found, key=lambda r: (r.display_name.lower(), r.address.lower()))


def _room_list_by_address(state: GraphState, tenant_id: str, address: str) -> RoomList:
    found = next((r for r in _room_lists(state, tenant_id) if r.address.lower() == address.lower()), None)
    if found is None:
        raise item_not_found()
    return found


def _room(user: User) -> dict[str, Any]:
    place = user.place or Place()
    return {
        "id": user.id,
        "displayName": user.display_name,
        "emailAddress": user.address,
        "address": place.address,
        "geoCoordinates": place.geo_coordinates,
        "phone": place.phone or "",
        "nickname": place.nickname or user.display_name,
        "building": place.building,
        "floorNumber": place.floor_number,
        "floorLabel": place.floor_label,
        "label": place.label,
        "capacity": place.capacity,
        "bookingType": place.booking_type,
        "audioDeviceName": place.audio_device_name,
        "videoDeviceName": place.video_device_name,
        "displayDeviceName": place.display_device_name,
        "isWheelChairAccessible": place.is_wheelchair_accessible,
        "tags": list(place.tags),
    }


def _room_list(room_list: RoomList) -> dict[str, Any]:
    return {"id": room_list.id, "displayName": room_list.display_name, "address": None, "geoCoordinates": None,
            "phone": "", "emailAddress": room_list.address}


def _options(req: GraphRequest) -> None:
    for name in req.query:
        low = name.lower()
        if low == "$filter":
            raise bad_request("The simulator does not support $filter on places.", "ErrorInvalidUrlQueryFilter")
        if low.startswith("$") and low not in _ALLOWED_OPTIONS:
            raise bad_request(f"Query option '{name}' is not supported on places.", "ErrorInvalidUrlQuery")


def _int(req: GraphRequest, name: str, default: int, minimum: int) -> int:
    raw = req.param(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise bad_request(f"Invalid value '{raw}' for query parameter '{name}'.", "ErrorInvalidUrlQuery")
    return int(raw)


def _project(doc: dict[str, Any], select: set[str] | None) -> dict[str, Any]:
    if select is None:
        return doc
    wanted = {s.lower() for s in select} | {"id", "@odata.type"}
    return {k: v for k, v in doc.items() if k.lower() in wanted}


def _page(req: GraphRequest, docs: list[dict[str, Any]], context: str) -> GraphResponse:
    _options(req)
    top = _int(req, "$top", DEFAULT_PAGE, 1)
    skip = _int(req, "$skip", 0, 0)
    count = (req.param("$count") or "").lower()
    if count not in ("", "true", "false"):
        raise bad_request(f"Invalid value '{count}' for query parameter '$count'.", "ErrorInvalidUrlQuery")
    select = parse_select(req.param("$select"))
    body: dict[str, Any] = {"@odata.context": context}
    if count == "true":
        body["@odata.count"] = len(docs)
    body["value"] = [_project(d, select) for d in docs[skip: skip + top]]
    return GraphResponse(200, body)


def _get(state: GraphState, req: GraphRequest, tenant_id: str, key: str) -> GraphResponse:
    for name in req.query:
        if name.lower().startswith("$") and name.lower() != "$select":
            raise bad_request(f"Query option '{name}' is not supported on a place.", "ErrorInvalidUrlQuery")
    wanted = key.lower()
    room = next((r for r in _rooms(state, tenant_id) if wanted in (r.id.lower(), r.address.lower())), None)
    if room is not None:
        doc = {"@odata.type": "#microsoft.graph.room", **_room(room)}
    else:
        found = next((r for r in _room_lists(state, tenant_id) if wanted in (r.id.lower(), r.address.lower())),
                     None)
        if found is None:
            raise item_not_found()
        doc = {"@odata.type": "#microsoft.graph.roomList", **_room_list(found)}
    body = {"@odata.context": f"{req.base_url}/$metadata#places/$entity",
            **_project(doc, parse_select(req.param("$select")))}
    return GraphResponse(200, body)
