"""Connections of users and spaces: status, calendars, choices, removal (host app, function key)."""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.errors import ValidationFailed
from shared.http import endpoint, json_response, read_json, route_param

bp = func.Blueprint()
ROUTE = "systems/{system}/connections/{kind}/{id}"


def _ids(req: func.HttpRequest) -> tuple[str, str, str]:
    return route_param(req, "system"), route_param(req, "kind"), route_param(req, "id")


@bp.route(route="systems/{system}/connections", methods=["GET"])
@endpoint
def list_connections(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().connections.listing(
        route_param(req, "system"), req.params.get("kind"), req.params.get("cursor"), req.params.get("limit")))


@bp.route(route=ROUTE, methods=["GET"])
@endpoint
def get_connection(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().connections.status(*_ids(req)))


@bp.route(route=ROUTE, methods=["PUT"])
@endpoint
def put_connection(req: func.HttpRequest) -> func.HttpResponse:
    """App mode: a space connection to a room mailbox with no sign-in (the app's own, scoped access)."""
    body = read_json(req)
    saved, created = runtime.services().connections.put_app(*_ids(req), body)
    return json_response(saved, 201 if created else 200)


@bp.route(route=ROUTE, methods=["PATCH"])
@endpoint
def patch_connection(req: func.HttpRequest) -> func.HttpResponse:
    body = read_json(req)
    return json_response(runtime.services().connections.update(*_ids(req), body))


@bp.route(route=ROUTE, methods=["DELETE"])
@endpoint
def delete_connection(req: func.HttpRequest) -> func.HttpResponse:
    flag = (req.params.get("remove_events") or "false").lower()
    if flag not in ("true", "false"):
        raise ValidationFailed("remove_events", "must be true or false")
    return json_response(runtime.services().connections.remove(*_ids(req), remove_events=flag == "true"))


@bp.route(route=f"{ROUTE}/calendars", methods=["GET"])
@endpoint
def list_calendars(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().connections.calendars(*_ids(req)))
