"""The admin console (anonymous, off unless CONSOLE_ENABLED): static pages that use the public API with the keys
an admin pastes in. In Azure it sits behind App Service Authentication (infra/main.bicep)."""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.http import endpoint

bp = func.Blueprint()


@bp.route(route="console/{file?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def console(req: func.HttpRequest) -> func.HttpResponse:
    from shared.console import HEADERS, ConsoleOff, asset

    settings = runtime.services(ensure_tables=False).settings
    if not settings.console_enabled:
        raise ConsoleOff("No function matches this route.")
    found = asset((req.route_params or {}).get("file"), settings.route_prefix)
    return func.HttpResponse(found.body, status_code=200, mimetype=found.content_type, charset="utf-8",
                             headers=HEADERS)
