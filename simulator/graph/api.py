"""The Graph v1.0 router and request pipeline: `make_graph_handler(sim)` is what the HTTPS server mounts.

Every request, top-level or `$batch` item, goes through one pipeline, in the order Graph applies it:
authenticate the bearer token -> resolve the mailbox in the path -> check calendar permissions -> take a
throttling slot (budget and concurrency per app and mailbox; 429 otherwise) -> injected faults -> injected
latency -> the handler. Control routes (`/_control/graph/...`) skip all of it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug import Request, Response

from simulator.core import DropConnection, Simulator
from simulator.graph import calendarview, delta, places, resources, schedule, subscriptions
from simulator.graph.auth import Caller, authenticate, authorize, mailbox_of
from simulator.graph.batch import run_batch
from simulator.graph.context import Ctx
from simulator.graph.control import handle_control
from simulator.graph.errors import GraphError, error_body, not_routable
from simulator.graph.http import JSON_TYPE, GraphRequest, GraphResponse, parse_query
from simulator.graph.state import GraphState, attach_graph

log = logging.getLogger(__name__)

Handler = Callable[[Ctx], GraphResponse]


@dataclass(frozen=True)
class Route:
    kind: str  # the counter bumped for each request served, e.g. "graph.event.create"
    handler: Handler
    write: bool = False
    calendar: bool = True  # needs calendar permissions (everything but reading the user object)


@dataclass(frozen=True)
class Match:
    route: Route
    who: str
    calendar_id: str | None
    calendar_named: bool
    item_id: str | None


_METHOD_NOT_ALLOWED = GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")


def _pick(method: str, options: dict[str, Route]) -> Route:
    route = options.get(method)
    if route is None:
        raise _METHOD_NOT_ALLOWED
    return route


def match(method: str, path: str) -> Match:
    """Map a path below /v1.0 to a route (segment keywords are case-insensitive, as in Graph)."""
    segs = [s for s in path.split("/") if s]
    if segs and segs[0].lower() == "me":
        who, rest = "me", segs[1:]
    elif len(segs) >= 2 and segs[0].lower() == "users":
        who, rest = segs[1], segs[2:]
    else:
        raise not_routable(method, path)
    calendar_id: str | None = None
    named = False
    low = [s.lower() for s in rest]

    def done(route: Route, item_id: str | None = None) -> Match:
        return Match(route, who, calendar_id, named, item_id)

    if not rest:
        return done(_pick(method, {"GET": Route("graph.user.read", resources.get_user, calendar=False)}))
    if low[0] == "calendars":
        if len(rest) == 1:
            return done(_pick(method, {
                "GET": Route("graph.calendar.list", resources.list_calendars),
                "POST": Route("graph.calendar.create", resources.create_calendar, write=True),
            }))
        calendar_id, named, rest, low = rest[1], True, rest[2:], low[2:]
        if not rest:
            return done(_pick(method, {"GET": Route("graph.calendar.read", resources.get_calendar)}))
    elif low[0] == "calendar":
        named, rest, low = True, rest[1:], low[1:]
        if not rest:
            return done(_pick(method, {"GET": Route("graph.calendar.read", resources.get_calendar)}))
    if low == ["getschedule"] and named:
        return done(_pick(method, {"POST": Route("graph.schedule", schedule.get_schedule)}))
    if low == ["events"]:
        return done(_pick(method, {
            "GET": Route("graph.event.list", calendarview.list_events),
            "POST": Route("graph.event.create", resources.create_event, write=True),
        }))
    if len(low) == 2 and low[0] == "events":
        return done(_pick(method, {
            "GET": Route("graph.event.read", resources.get_event),
            "PATCH": Route("graph.event.update", resources.update_event, write=True),
            "DELETE": Route("graph.event.delete", resources.delete_event, write=True),
        }), rest[1])
    if len(low) == 3 and low[0] == "events" and low[2] == "instances":
        return done(_pick(method, {"GET": Route("graph.event.instances", calendarview.list_instances)}), rest[1])
    if low == ["calendarview"]:
        return done(_pick(method, {"GET": Route("graph.calendarview", calendarview.calendar_view)}))
    if low in (["calendarview", "delta"], ["calendarview", "microsoft.graph.delta()"]):
        return done(_pick(method, {"GET": Route("graph.delta", delta.delta)}))
    raise not_routable(method, path)


def _error(exc: GraphError, req: GraphRequest) -> GraphResponse:
    return GraphResponse(exc.status, error_body(exc.code, exc.message, req.request_id, req.client_request_id),
                         exc.headers)


def _fault_error(kind: str, retry_after: int | None) -> GraphError:
    headers = {"Retry-After": str(retry_after if retry_after is not None else 1)} if kind in ("429", "503") else {}
    if kind == "429":
        return GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", headers)
    if kind == "503":
        return GraphError(503, "ServiceNotAvailable", "The service is temporarily unavailable.", headers)
    return GraphError(504, "GatewayTimeout", "The gateway timed out waiting for the mailbox server.", headers)


def run(state: GraphState, req: GraphRequest) -> GraphResponse:
    """One Graph request through the whole pipeline; raises DropConnection for connection-level faults."""
    started = time.monotonic()
    counters = state.counters
    counters.incr("graph.requests")
    if places.handles(req.path):  # /places: the tenant's rooms, no mailbox in the path (graph/places.py)
        try:
            return _counted(state, places.serve(state, req))
        except GraphError as exc:
            return _counted(state, _error(exc, req))
    try:
        caller = authenticate(state.sim, req)
        if subscriptions.is_subscriptions_path(req.path):
            return _counted(state, _run_subscriptions(state, req, caller))
        found = match(req.method, req.path)
        mailbox = mailbox_of(state.sim, caller, found.who)
        access = authorize(state.sim, caller, mailbox, write=found.route.write) if found.route.calendar else None
    except GraphError as exc:
        return _counted(state, _error(exc, req))
    with state.throttle.slot(caller.client_id, mailbox.address, started) as rejection:
        if rejection is not None:
            err = GraphError(429, "ApplicationThrottled", rejection.message,
                             {"Retry-After": str(rejection.retry_after)})
            return _counted(state, _error(err, req))
        fault = state.faults.pick(req.method, req.target)
        if fault is not None:
            counters.incr(f"graph.faults.{fault.kind}")
            if fault.kind == "reset":
                raise DropConnection("fault: connection reset")
            if fault.status is not None:
                if fault.status == 429:  # the mailbox stays throttled for the Retry-After it was told
                    state.throttle.block(caller.client_id, mailbox.address,
                                         fault.retry_after if fault.retry_after is not None else 1)
                return _counted(state, _error(_fault_error(fault.kind, fault.retry_after), req))
        counters.incr(found.route.kind)
        ctx = Ctx(state, req, caller, mailbox, access, found.calendar_id, found.calendar_named, found.item_id,
                  fault=fault.kind if fault is not None else None)
        try:
            response = found.route.handler(ctx)
        except GraphError as exc:
            response = _error(exc, req)
        if fault is not None and fault.kind == "timeout_after_commit":
            raise DropConnection("fault: connection dropped after the work was committed")
        return _counted(state, response)


def _run_subscriptions(state: GraphState, req: GraphRequest, caller: Caller) -> GraphResponse:
    """`/subscriptions` names no mailbox, so no mailbox throttling; injected faults still apply."""
    fault = state.faults.pick(req.method, req.target)
    if fault is not None:
        state.counters.incr(f"graph.faults.{fault.kind}")
        if fault.kind == "reset":
            raise DropConnection("fault: connection reset")
        if fault.status is not None:
            return _error(_fault_error(fault.kind, fault.retry_after), req)
    state.counters.incr(f"graph.subscription.{req.method.lower()}")
    try:
        response = subscriptions.handle(state, req, caller)
    except GraphError as exc:
        response = _error(exc, req)
    if fault is not None and fault.kind == "timeout_after_commit":
        raise DropConnection("fault: connection dropped after the work was committed")
    return response


def _counted(state: GraphState, response: GraphResponse) -> GraphResponse:
    state.counters.incr(f"graph.status.{response.status}")
    return response


def run_envelope(state: GraphState, req: GraphRequest) -> GraphResponse:
    """`POST /$batch`: the envelope is authenticated and can itself be hit by a fault; its items run through
    `run` one by one."""
    counters = state.counters
    counters.incr("graph.batch")
    fault = None
    try:
        authenticate(state.sim, req)
        if req.method != "POST":
            raise GraphError(405, "BadRequest", "Batch requests must use POST.")
        fault = state.faults.pick(req.method, req.target)
        if fault is not None:
            counters.incr(f"graph.faults.{fault.kind}")
            if fault.kind == "reset":
                raise DropConnection("fault: connection reset")
            if fault.status is not None:
                raise _fault_error(fault.kind, fault.retry_after)

        def record(size: int) -> None:
            counters.sample("graph.batch.size", size)
            counters.incr("graph.batch.items", size)

        response = run_batch(req, lambda item: run(state, item), record)
    except GraphError as exc:
        return _error(exc, req)
    if fault is not None and fault.kind == "timeout_after_commit":
        raise DropConnection("fault: connection dropped after the batch was committed")
    return response


def _to_werkzeug(resp: GraphResponse, req: GraphRequest) -> Response:
    headers = {"request-id": req.request_id, "client-request-id": req.client_request_id,
               "Cache-Control": "no-cache", **resp.headers}
    if resp.body is None:
        return Response(status=resp.status, headers=headers)
    return Response(json.dumps(resp.body), status=resp.status, headers=headers, content_type=JSON_TYPE)


def _headers(request: Request) -> dict[str, str]:
    """Lower-cased headers; repeated ones (several `Prefer` lines) joined as HTTP allows."""
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def make_graph_handler(sim: Simulator) -> Callable[[Request], Response]:
    """The handler the HTTPS server calls for every path under /v1.0/ and /_control/graph/."""
    state = attach_graph(sim)

    def handle(request: Request) -> Response:
        if request.path.startswith("/_control/graph"):
            return handle_control(state, request)
        client_request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        greq = GraphRequest(
            method=request.method.upper(),
            path=request.path[len("/v1.0"):] if request.path.startswith("/v1.0") else request.path,
            query=parse_query(request.query_string.decode("latin-1")),
            headers=_headers(request),
            body=request.get_data(),
            base_url=request.host_url.rstrip("/") + "/v1.0",
            request_id=str(uuid.uuid4()),
            client_request_id=client_request_id,
        )
        try:
            is_batch = greq.path.strip("/").lower() == "$batch"
            resp = run_envelope(state, greq) if is_batch else run(state, greq)
        except DropConnection:
            raise
        except Exception:  # a simulator bug must still look like a Graph 500, not a hung connection
            log.exception("graph simulator failed on %s %s", greq.method, greq.path)
            resp = GraphResponse(500, error_body("generalException", "An internal error occurred.",
                                                 greq.request_id, greq.client_request_id))
        return _to_werkzeug(resp, greq)

    return handle
