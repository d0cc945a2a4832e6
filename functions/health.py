"""Anonymous operational routes: GET /api/health (liveness and dependency checks for load balancers and
operators) and GET /api/openapi.json (the API's OpenAPI 3 description, for integrators and tools)."""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.http import JSON_HEADERS, endpoint, json_response

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def health(req: func.HttpRequest) -> func.HttpResponse:
    report = runtime.services(ensure_tables=False).health.run()
    return json_response(report.to_body(), 200 if report.healthy else 503)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from shared.openapi import document_bytes  # pure data, built once per process on first use

    return func.HttpResponse(document_bytes(), status_code=200, mimetype="application/json", charset="utf-8",
                             headers={**JSON_HEADERS, "Cache-Control": "public, max-age=300"})
