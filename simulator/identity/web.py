"""Per-request context and response helpers shared by the identity endpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug import Request, Response

from simulator.core import Simulator
from simulator.identity.errors import ErrorContext
from simulator.identity.state import IdentityState


@dataclass
class Ctx:
    sim: Simulator
    state: IdentityState
    base_url: str  # "https://host:port", as the client reached us: issuer and endpoints are built from it
    errors: ErrorContext

    @staticmethod
    def for_request(sim: Simulator, state: IdentityState, request: Request) -> Ctx:
        base_url = request.host_url.rstrip("/")
        correlation = request.headers.get("client-request-id")
        return Ctx(sim, state, base_url, ErrorContext.new(sim.clock.now(), base_url, correlation))

    @property
    def now(self) -> float:
        return self.sim.clock.time()

    def count(self, name: str) -> None:
        self.sim.counters.incr(name)


def json_response(body: Any, status: int = 200, *, no_store: bool = False) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")
    if no_store:
        response.headers["Cache-Control"] = "no-store, no-cache"
        response.headers["Pragma"] = "no-cache"
    return response


def html_response(html: str, status: int = 200) -> Response:
    response = Response(html, status=status, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store, no-cache"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def with_query(uri: str, params: dict[str, str]) -> str:
    """Append parameters to a redirect URI, keeping any query it already has (registered URIs may carry one)."""
    parts = urlsplit(uri)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def with_fragment(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, urlencode(params)))
