"""The HTTP front of the local host: routes, keys, `func.HttpRequest` in and `func.HttpResponse` out, admin API.

Everything the host itself answers (401, 404, 405, 500) is JSON `{"error": {"code", "message"}}` so clients of
the app see one error shape, and never a stack trace: those go to the log.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devstack.host.catalog import FunctionSpec, enum_value
from devstack.host.invoke import FunctionFailed, Invoker
from devstack.host.routes import CONVERTERS, is_catch_all, translate

logger = logging.getLogger("devstack.host")
KEY_HEADER = "x-functions-key"
_ADMIN_INVOKE = re.compile(r"/admin/functions/([^/]+)/?")

AdminInvoke = Callable[[FunctionSpec, str], None]


@dataclass(frozen=True)
class _Endpoint:
    spec: FunctionSpec
    defaults: dict[str, str]


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(body, status=status, mimetype="application/json", headers=headers)


def http_methods(spec: FunctionSpec) -> list[str] | None:
    methods = spec.trigger.methods
    return sorted({str(enum_value(m)).upper() for m in methods}) if methods else None


def auth_level(spec: FunctionSpec) -> str:
    return str(enum_value(spec.trigger.auth_level) or "function").lower()


class HttpFrontend:
    """A WSGI application serving the app's HTTP functions and `POST /admin/functions/{name}`."""

    def __init__(self, specs: Iterable[FunctionSpec], *, route_prefix: str, function_key: str, master_key: str,
                 invoker: Invoker, admin_invoke: AdminInvoke) -> None:
        self._function_key = function_key
        self._master_key = master_key
        self._invoker = invoker
        self._admin_invoke = admin_invoke
        self._functions: dict[str, FunctionSpec] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        options: dict[str, Any] = {"converters": CONVERTERS, "strict_slashes": False, "merge_slashes": False}
        # Catch-all routes answer only when nothing else matches, whatever werkzeug's own ranking says.
        self._maps = (Map(**options), Map(**options))
        for spec in specs:
            self._functions[spec.name.lower()] = spec
            if spec.kind != "http":
                continue
            template = spec.trigger.route or spec.name
            target = self._maps[1] if is_catch_all(template) else self._maps[0]
            for index, route in enumerate(translate(template, route_prefix)):
                endpoint = f"{spec.name}#{index}"
                self._endpoints[endpoint] = _Endpoint(spec, route.defaults)
                target.add(Rule(route.rule, endpoint=endpoint, methods=http_methods(spec)))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception:  # a host bug must still answer in the documented shape
            logger.exception("local host failed to handle a request")
            response = error_response(500, "internal_error", "The host failed to handle the request.")
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        admin = _ADMIN_INVOKE.fullmatch(request.path)
        if admin is not None:
            return self._admin(request, admin.group(1))
        matched = self._match(request)
        if isinstance(matched, Response):
            return matched
        endpoint, route_params = matched
        spec = endpoint.spec
        level = auth_level(spec)
        if level != "anonymous" and not self._key_ok(request, admin_only=level == "admin"):
            logger.warning("Rejected a call to '%s': missing or invalid %s key", spec.name,
                           "master" if level == "admin" else "function")
            return error_response(401, "unauthorized", "A valid key is required (x-functions-key header or code).")
        try:
            response = self._invoker.run(spec, _to_function_request(request, {**endpoint.defaults, **route_params}))
        except FunctionFailed:
            return error_response(500, "internal_error", f"Function '{spec.name}' failed.")
        return _to_werkzeug_response(response)

    def _match(self, request: Request) -> tuple[_Endpoint, dict[str, str]] | Response:
        allowed: set[str] = set()
        for routing in self._maps:
            adapter = routing.bind_to_environ(request.environ)
            try:
                endpoint, values = adapter.match(method=request.method)
            except MethodNotAllowed as exc:
                allowed.update(exc.valid_methods or ())
                continue
            except HTTPException:
                continue
            return self._endpoints[str(endpoint)], {k: str(v) for k, v in values.items()}
        if allowed:
            return error_response(405, "method_not_allowed", f"{request.method} is not allowed on this route.",
                                  {"Allow": ", ".join(sorted(allowed))})
        return error_response(404, "not_found", "No function matches this route.")

    def _key_ok(self, request: Request, *, admin_only: bool) -> bool:
        key = request.headers.get(KEY_HEADER) or request.args.get("code")
        if not key:
            return False
        accepted = [self._master_key] if admin_only else [self._function_key, self._master_key]
        return any(hmac.compare_digest(key.encode(), k.encode()) for k in accepted)

    def _admin(self, request: Request, name: str) -> Response:
        if request.method != "POST":
            return error_response(405, "method_not_allowed", "Use POST.", {"Allow": "POST"})
        if not self._key_ok(request, admin_only=True):
            logger.warning("Rejected an admin call: missing or invalid master key")
            return error_response(401, "unauthorized", "The master key is required.")
        spec = self._functions.get(name.lower())
        if spec is None:
            return error_response(404, "not_found", f"No function named '{name}'.")
        if spec.kind == "http":
            return error_response(400, "bad_request", f"'{spec.name}' is HTTP-triggered: call its route instead.")
        try:
            payload = json.loads(request.get_data() or b"{}")
        except ValueError:
            return error_response(400, "bad_request", 'The body must be JSON like {"input": "..."}.')
        value = payload.get("input", "") if isinstance(payload, dict) else None
        if not isinstance(value, str):
            return error_response(400, "bad_request", 'The body must be JSON like {"input": "..."}.')
        self._admin_invoke(spec, value)
        return Response(status=202)


def _to_function_request(request: Request, route_params: dict[str, str]) -> func.HttpRequest:
    """Repeated headers and query parameters arrive comma-joined, as the .NET host hands them to the worker."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    params = {name: ",".join(values) for name, values in request.args.lists()}
    return func.HttpRequest(request.method, request.url, headers=headers, params=params,
                            route_params=route_params, body=request.get_data())


def _to_werkzeug_response(response: func.HttpResponse) -> Response:
    headers = Headers(response.headers)
    if "content-type" not in headers:
        mimetype = response.mimetype
        headers["Content-Type"] = f"{mimetype}; charset={response.charset}" if mimetype.startswith("text/") \
            else mimetype
    return Response(response.get_body(), status=response.status_code, headers=headers)
