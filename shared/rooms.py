"""Room discovery: the directory's rooms and room lists from Microsoft Graph's Places API, for the host's dropdown
(instead of a room address typed in by hand).

`GET /places/microsoft.graph.room` lists every room of the directory, `GET /places/{room list}/microsoft.graph
.roomlist/rooms` the rooms of one room list, `GET /places/microsoft.graph.roomlist` the room lists; each answers
100 places a page by default (https://learn.microsoft.com/graph/api/place-list). v1.0 gives no `@odata.nextLink`
there, so pages are read with `$top`/`$skip` until one comes back short; a nextLink is followed when one comes.
They need `Place.Read.All`: as an application permission with the app's own token (app access), or as a delegated
one through a signed-in connection named by `via` (that permission needs admin consent, so it is not in the sync
scopes: a tenant without that consent could not connect rooms at all). Rooms hidden from the address list are not
returned by Microsoft either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared import validation
from shared.connections import ConnectionAccess
from shared.errors import Conflict, DomainError, NotFound, ValidationFailed
from shared.graph.client import GraphClient, GraphError, TokenSource
from shared.identity import PLACE_SCOPES
from shared.integrations import IntegrationService
from shared.models import KINDS, Integration
from shared.tokens import ScopeNotGranted

MAX_PLACES = 5000  # a dropdown's worth; more are cut off and `truncated` says so
PAGE = 100  # Graph's default page of rooms and room lists
PERMISSION = PLACE_SCOPES[0]


class PlacePermissionMissing(DomainError):
    code = "place_permission_missing"
    status = 403


class RoomDiscoveryUnavailable(Conflict):
    code = "room_discovery_unavailable"


class RoomListNotFound(NotFound):
    code = "room_list_not_found"


@dataclass(frozen=True)
class Places:
    items: list[dict[str, Any]]
    truncated: bool


class RoomService:
    def __init__(self, access: ConnectionAccess, integrations: IntegrationService, graph: GraphClient, *,
                 max_places: int = MAX_PLACES) -> None:
        self._access = access
        self._integrations = integrations
        self._graph = graph
        self._max = max_places

    def rooms(self, system: str, room_list: str | None, via: str | None) -> dict[str, Any]:
        validation.identifier(system, "system")
        if room_list is not None:
            room_list = validation.mailbox(room_list.strip(), "room_list")
            path = f"/places/{quote(room_list, safe='@')}/microsoft.graph.roomlist/rooms"
        else:
            path = "/places/microsoft.graph.room"
        mode, shown_via, places = self._read(system, via, path, room_list)
        rooms = sorted((_room(p) for p in places.items if p.get("emailAddress")),
                       key=lambda r: ((r["display_name"] or "").lower(), r["address"]))
        return {"system": system, "mode": mode, "via": shown_via, "room_list": room_list, "rooms": rooms,
                "count": len(rooms), "truncated": places.truncated}

    def room_lists(self, system: str, via: str | None) -> dict[str, Any]:
        validation.identifier(system, "system")
        mode, shown_via, places = self._read(system, via, "/places/microsoft.graph.roomlist", None)
        lists = sorted(({"address": str(p["emailAddress"]).lower(), "display_name": p.get("displayName")}
                        for p in places.items if p.get("emailAddress")),
                       key=lambda r: ((r["display_name"] or "").lower(), r["address"]))
        return {"system": system, "mode": mode, "via": shown_via, "room_lists": lists, "count": len(lists),
                "truncated": places.truncated}

    # --- reading -------------------------------------------------------------------------------------------------

    def _read(self, system: str, via: str | None, path: str, room_list: str | None) -> tuple[str, str | None, Places]:
        """(mode, via as shown, places): with the app's token unless `via` names a delegated connection."""
        integration = self._integrations.require_enabled(system)
        if via is None:
            if integration.app_tenant is None:
                raise RoomDiscoveryUnavailable(
                    f"system {system} has no app access, so rooms can only be listed through a signed-in "
                    "connection: pass via=space/<id> or via=user/<id> (its account needs the delegated "
                    f"{PERMISSION} permission), or enable app_access on the integration",
                    details={"field": "via"})
            return "app", None, self._app_read(integration, path, room_list)
        kind, _, subject_id = via.partition("/")
        if kind not in KINDS or not subject_id:
            raise ValidationFailed("via", "must name a connection as space/<id> or user/<id>")
        connection = self._access.require(system, kind, subject_id)
        shown = f"{kind}/{subject_id}"
        if connection.is_app:  # the app's own token, as without `via`; a Places refusal says nothing of the room
            return "app", shown, self._app_read(integration, path, room_list)
        try:
            places = self._access.run(connection, lambda token: self._pages(token, path, room_list),
                                      integration=integration, scopes=PLACE_SCOPES)
        except ScopeNotGranted as exc:
            raise PlacePermissionMissing(_delegated_fix(shown), microsoft_code=exc.microsoft_code) from None
        except PlacePermissionMissing as exc:
            raise PlacePermissionMissing(_delegated_fix(shown), microsoft_code=exc.microsoft_code) from None
        return "delegated", shown, places

    def _app_read(self, integration: Integration, path: str, room_list: str | None) -> Places:
        try:
            return self._pages(self._access.app_token_source(integration), path, room_list)
        except PlacePermissionMissing as exc:
            raise PlacePermissionMissing(
                f"The app lacks the {PERMISSION} application permission in the directory {integration.app_tenant} "
                f"(Microsoft Graph answered {exc.microsoft_code}): an administrator adds Microsoft Graph > "
                f"Application permissions > {PERMISSION} to the app registration and grants admin consent. It "
                "lets the app list rooms and room lists; it opens no calendar.",
                microsoft_code=exc.microsoft_code) from None

    def _pages(self, token: TokenSource, path: str, room_list: str | None) -> Places:
        """Every page: `@odata.nextLink` when Graph gives one, else `$skip` on until a page comes back short
        (v1.0's Places answers without a nextLink: https://learn.microsoft.com/answers/questions/1021419)."""
        items: list[dict[str, Any]] = []
        url, params = path, {"$top": str(PAGE)}
        try:
            while True:
                page = self._graph.request(token, "GET", url, params=params)
                values = [v for v in page.get("value", []) if isinstance(v, dict)]
                items.extend(values)
                if len(items) >= self._max:
                    return Places(items[: self._max], True)
                if page.get("@odata.nextLink"):
                    url, params = str(page["@odata.nextLink"]), None
                elif len(values) < PAGE or params is None:
                    return Places(items, False)
                else:
                    url, params = path, {"$top": str(PAGE), "$skip": str(len(items))}
        except GraphError as exc:
            if exc.http_status == 403:
                raise PlacePermissionMissing(f"Microsoft Graph refused to list places ({exc.graph_code})",
                                             microsoft_code=exc.graph_code) from None
            if room_list is not None and (exc.http_status == 404 or exc.graph_code in ("ErrorItemNotFound",
                                                                                       "ResourceNotFound")):
                raise RoomListNotFound(f"no room list {room_list} in the directory ({exc.graph_code})",
                                       microsoft_code=exc.graph_code) from None
            raise


def _room(place: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": str(place["emailAddress"]).lower(),
        "display_name": place.get("displayName"),
        "capacity": place.get("capacity"),
        "building": place.get("building"),
        "floor": place.get("floorNumber"),
        "floor_label": place.get("floorLabel"),
    }


def _delegated_fix(via: str) -> str:
    return (f"The signed-in account of {via} may not list rooms: Microsoft has no consent for the delegated "
            f"{PERMISSION} permission for this app. It needs an administrator's consent (Microsoft Entra admin "
            "center > Enterprise applications > the app > Permissions > Grant admin consent); turn on "
            "room_discovery.delegated on the integration so space sign-ins ask for it. Or enable app access and "
            f"grant the {PERMISSION} application permission instead.")
