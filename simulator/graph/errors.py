"""Graph's error shape, so clients exercise the same parsing they need against the real service.

Graph answers every failure as `{"error": {"code", "message", "innerError": {"date", "request-id",
"client-request-id"}}}`; clients branch on `code` (e.g. `ErrorItemNotFound` on a delete that already happened), so
the codes here are the ones Microsoft sends, not invented ones, wherever the docs or public reports name them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class GraphError(Exception):
    """Raised anywhere below the router to end a request with a Graph-shaped error."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(code: str, message: str, request_id: str, client_request_id: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }


# Constructors for the errors the simulator raises in more than one place; one spelling per code.


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def invalid_parameter(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidParameter", message)


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def access_denied() -> GraphError:
    return GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def invalid_user(who: str) -> GraphError:
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{who}' is invalid.")


def unauthenticated(message: str) -> GraphError:
    challenge = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                 'client_id="00000003-0000-0000-c000-000000000000"')
    return GraphError(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": challenge})


def not_routable(method: str, path: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment in '{method} {path}'.")
