"""Room discovery for the host's dropdown: the directory's rooms and room lists (function key + system key)."""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.http import endpoint, json_response, route_param

bp = func.Blueprint()


@bp.route(route="systems/{system}/rooms", methods=["GET"])
@endpoint
def list_rooms(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().rooms.rooms(route_param(req, "system"), req.params.get("room_list"),
                                                        req.params.get("via")))


@bp.route(route="systems/{system}/room-lists", methods=["GET"])
@endpoint
def list_room_lists(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().rooms.room_lists(route_param(req, "system"), req.params.get("via")))
