"""Alerts for the host app's admin dashboard (function key)."""

from __future__ import annotations

import azure.functions as func

from shared import runtime, validation
from shared.http import endpoint, json_response, route_param

bp = func.Blueprint()


@bp.route(route="systems/{system}/alerts", methods=["GET"])
@endpoint
def list_alerts(req: func.HttpRequest) -> func.HttpResponse:
    system = validation.identifier(route_param(req, "system"), "system")
    return json_response({"system": system, "alerts": runtime.services().alerts.list(system)})
