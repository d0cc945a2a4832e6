"""Integration settings per system, and per-location settings for spaces (admin, function key)."""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.http import endpoint, json_response, read_json, route_param

bp = func.Blueprint()


@bp.route(route="systems/{system}/integration", methods=["GET"])
@endpoint
def get_integration(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().integrations.describe(route_param(req, "system")))


@bp.route(route="systems/{system}/integration", methods=["PUT"])
@endpoint
def put_integration(req: func.HttpRequest) -> func.HttpResponse:
    body = read_json(req)
    saved, created = runtime.services().integrations.save(route_param(req, "system"), body)
    return json_response(saved, 201 if created else 200)


@bp.route(route="systems/{system}/locations/{location}", methods=["GET"])
@endpoint
def get_location(req: func.HttpRequest) -> func.HttpResponse:
    from shared.integrations import location_json

    system, location = route_param(req, "system"), route_param(req, "location")
    return json_response(location_json(runtime.services().integrations.location(system, location)))


@bp.route(route="systems/{system}/locations/{location}", methods=["PUT"])
@endpoint
def put_location(req: func.HttpRequest) -> func.HttpResponse:
    body = read_json(req)
    return json_response(runtime.services().integrations.save_location(
        route_param(req, "system"), route_param(req, "location"), body))
