"""HTTP plumbing shared by every trigger: JSON bodies in, JSON out, and the one place errors become responses.

Triggers wrap themselves in `@endpoint`: a `DomainError` becomes its status with `{"error": {"code", "message"}}`;
anything else is logged with its traceback and answered 500 `internal_error`, never with the traceback.

`@endpoint` is also where the system key is checked (shared/system_keys.py): every route with a `{system}`
parameter gets it before the trigger runs, so a new route cannot forget it. The operator's routes (master key,
auth level ADMIN) use `@operator_endpoint` instead, which maps errors the same way and checks no system key.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.errors import (
    DomainError,
    InvalidJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.validation import field  # noqa: F401 - re-exported for triggers

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
# The deepest body the API takes is a bulk export's items[].occurrences[].key (4 levels); far deeper JSON is
# either a mistake or an attack on the parser (Python's recursion limit), so it is refused early.
MAX_JSON_DEPTH = 16
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers={**JSON_HEADERS, **(headers or {})},
    )


def error_response(error: DomainError) -> func.HttpResponse:
    return json_response(error.to_body(), error.status)


def endpoint(handler: Handler) -> Handler:
    """Map the domain's errors to responses, once, for every HTTP trigger; on a system's routes, check the
    caller's system key first (before the body is read or anything else is done)."""
    return _wrap(handler, check_system_key=True)


def operator_endpoint(handler: Handler) -> Handler:
    """For the operator's routes (auth level ADMIN: the master key is the gate): errors mapped, no system key."""
    return _wrap(handler, check_system_key=False)


def _check_system_key(req: func.HttpRequest) -> None:
    system = (req.route_params or {}).get("system")
    if system is None:
        return
    from shared import runtime
    from shared.system_keys import HEADER

    runtime.services().system_keys.verify(system, req.headers.get(HEADER))


def _wrap(handler: Handler, *, check_system_key: bool) -> Handler:
    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            if check_system_key:
                _check_system_key(req)
            return handler(req)
        except DomainError as error:
            if error.status >= 500:
                log.error("%s failed: %s (%s)", handler.__name__, error.code, error.message)
            return error_response(error)
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("%s crashed (incident %s)", handler.__name__, incident)
            return json_response(
                {"error": {"code": "internal_error",
                           "message": f"Unexpected error; quote incident {incident} to the operator"}},
                500,
            )

    return wrapper


def read_json(req: func.HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, or a 4xx naming what is wrong with it."""
    return parse_json_body(req.get_body() or b"", req.headers.get("content-type"))


def parse_json_body(body: bytes, content_type: str | None, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """`read_json` for a body already in hand (a service that counts what it refuses calls this itself)."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is over {max_bytes // 1024} KiB")
    content_type = (content_type or "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")
    if not body.strip():
        raise InvalidJson("request body is empty; a JSON object is required")
    try:
        data = json.loads(body)
    except RecursionError:
        raise InvalidJson(f"request body is nested too deeply; at most {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(f"request body is not valid JSON: {_describe(exc)}") from None
    if not isinstance(data, dict):
        raise InvalidJson("request body must be a JSON object")
    _check_tree(data)
    return data


def _check_tree(data: dict[str, Any]) -> None:
    """Every value of the body, without recursion: too deep a nesting, or a lone surrogate (JSON's "\\ud800"
    escape decodes to a str that cannot be encoded as UTF-8, so a table row, a hash or Graph fails on it later),
    is refused naming the field's path."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValidationFailed(path, f"is nested too deeply; a body may have at most {MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            _encodable(value, path)
        elif isinstance(value, dict):
            for key, inner in value.items():
                label = key if key.isprintable() else json.dumps(key)[1:-1]  # escapes, as the caller wrote it
                inner_path = f"{path}.{label}" if path else label
                _encodable(key, inner_path)
                stack.append((inner, inner_path, depth + 1))
        elif isinstance(value, list):
            stack.extend((inner, f"{path}[{index}]", depth + 1) for index, inner in enumerate(value))


def _encodable(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(path, "holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape); "
                                     "send valid Unicode text") from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "not UTF-8"


def route_param(req: func.HttpRequest, name: str) -> str:
    value = (req.route_params or {}).get(name)
    if not value:
        raise ValidationFailed(name, "is missing from the route")
    return value
