"""The operator's routes (master key, auth level ADMIN): create a system and manage its keys (see
shared/system_keys.py). A new key is answered once; afterwards only its ID and creation time are shown."""

from __future__ import annotations

import azure.functions as func

from shared import runtime
from shared.http import json_response, operator_endpoint, route_param

bp = func.Blueprint()
ADMIN = func.AuthLevel.ADMIN


@bp.route(route="systems/{system}", methods=["POST"], auth_level=ADMIN)
@operator_endpoint
def create_system(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().system_keys.create_system(route_param(req, "system")), 201)


@bp.route(route="systems/{system}/keys", methods=["GET"], auth_level=ADMIN)
@operator_endpoint
def list_system_keys(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().system_keys.list_keys(route_param(req, "system")))


@bp.route(route="systems/{system}/keys", methods=["POST"], auth_level=ADMIN)
@operator_endpoint
def add_system_key(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().system_keys.add_key(route_param(req, "system")), 201)


@bp.route(route="systems/{system}/keys/{key_id}", methods=["DELETE"], auth_level=ADMIN)
@operator_endpoint
def revoke_system_key(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(runtime.services().system_keys.revoke(route_param(req, "system"),
                                                               route_param(req, "key_id")))
