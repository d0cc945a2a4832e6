"""GET /api/health (anonymous): liveness and dependency checks for load balancers and operators."""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.http import endpoint, json_response

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def health(req: func.HttpRequest) -> func.HttpResponse:
    report = runtime.services(ensure_tables=False).health.run()
    return json_response(report.to_body(), 200 if report.healthy else 503)
