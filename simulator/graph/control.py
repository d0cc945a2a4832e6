"""`/_control/graph/...`: the JSON control API for tests, benchmarks and the local stack's operator.

Each route mirrors a `GraphState` method, so a test in the same process can call Python and a test driving a
separately started stack can call HTTP, with the same meaning. Routes:

    GET    /_control/graph/counters                    graph.* counters, events per calendar, throttle state
    POST   /_control/graph/counters/reset
    PUT    /_control/graph/latency                     {fixed_ms, jitter_ms, mailbox?, seed?}
    PUT    /_control/graph/throttling                  {concurrency?, budget?, window_seconds?,
                                                        concurrency_retry_after?, enabled?}
    GET    /_control/graph/faults
    POST   /_control/graph/faults                      {kind, probability?, count?, method?, path_contains?,
                                                        retry_after?, seed?}
    DELETE /_control/graph/faults
    POST   /_control/graph/delta/invalidate            {mailbox?}
    GET    /_control/graph/mailboxes/{m}/calendars
    POST   /_control/graph/mailboxes/{m}/calendars     {name}
    GET    /_control/graph/mailboxes/{m}/events        ?calendar_id=
    POST   /_control/graph/mailboxes/{m}/events        {event, as_user?, calendar_id?}
    PATCH  /_control/graph/events/{id}                 {changes, as_user?}
    POST   /_control/graph/events/{id}/move            {calendar_id}: a user moves it to another calendar
    DELETE /_control/graph/events/{id}                 ?as_user=
    POST   /_control/graph/reset                       faults cleared, no latency, default limits (and change
                                                        notifications: no faults, 1 s latency, Graph's timeouts)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from werkzeug import Request, Response

from simulator.graph.errors import GraphError

if TYPE_CHECKING:
    from simulator.graph.state import GraphState


def _json(value: object, status: int = 200) -> Response:
    if status == 204:
        return Response(status=204)
    return Response(json.dumps(value), status=status, content_type="application/json")


def _body(request: Request) -> dict[str, Any]:
    raw = request.get_data()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _only(body: dict[str, Any], *names: str) -> dict[str, Any]:
    unknown = set(body) - set(names)
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}; allowed: {list(names)}")
    return body


def handle_control(state: GraphState, request: Request) -> Response:
    try:
        return _route(state, request)
    except GraphError as exc:
        return _json({"error": {"code": exc.code, "message": exc.message}}, exc.status)
    except (ValueError, TypeError) as exc:
        return _json({"error": {"code": "BadRequest", "message": str(exc)}}, 400)


def _route(state: GraphState, request: Request) -> Response:
    segs = [s for s in request.path[len("/_control/graph"):].split("/") if s]
    method = request.method.upper()
    body = _body(request) if method in ("POST", "PUT", "PATCH") else {}
    if segs == ["counters"] and method == "GET":
        return _json(state.counter_snapshot())
    if segs == ["counters", "reset"] and method == "POST":
        state.reset_counters()
        return _json({"reset": True})
    if segs == ["latency"] and method in ("PUT", "POST"):
        args = _only(body, "fixed_ms", "jitter_ms", "mailbox", "seed")
        state.set_latency(float(args.get("fixed_ms", 0)), float(args.get("jitter_ms", 0)),
                          mailbox=args.get("mailbox"), seed=args.get("seed"))
        return _json(state.throttle.snapshot()["latency"])
    if segs == ["throttling"] and method in ("PUT", "POST"):
        args = _only(body, "concurrency", "budget", "window_seconds", "concurrency_retry_after", "enabled")
        return _json(state.set_throttling(**args))
    if segs == ["faults"]:
        if method == "GET":
            return _json(state.faults.rules())
        if method == "POST":
            args = _only(body, "kind", "probability", "count", "method", "path_contains", "retry_after", "seed")
            if "kind" not in args:
                raise ValueError("'kind' is required")
            kind = str(args.pop("kind"))
            return _json(state.add_fault(kind, **args), 201)
        if method == "DELETE":
            state.clear_faults()
            return _json(None, 204)
    if segs == ["delta", "invalidate"] and method == "POST":
        args = _only(body, "mailbox")
        return _json({"calendars": state.invalidate_delta(args.get("mailbox"))})
    if segs == ["reset"] and method == "POST":
        state.clear_faults()
        state.set_latency(0, 0)
        state.throttle.mailbox_latency.clear()
        state.set_throttling(concurrency=4, budget=10_000, window_seconds=600, concurrency_retry_after=1, enabled=True)
        state.subscriptions.notifier.reset_settings()
        return _json({"reset": True})
    if len(segs) == 3 and segs[0] == "mailboxes":
        mailbox, what = segs[1], segs[2]
        if what == "calendars" and method == "GET":
            return _json(state.calendars(mailbox))
        if what == "calendars" and method == "POST":
            args = _only(body, "name")
            return _json(state.create_calendar(mailbox, str(args.get("name") or "")), 201)
        if what == "events" and method == "GET":
            return _json(state.list_events(mailbox, request.args.get("calendar_id")))
        if what == "events" and method == "POST":
            args = _only(body, "event", "as_user", "calendar_id")
            if not isinstance(args.get("event"), dict):
                raise ValueError("'event' (a Graph event body) is required")
            return _json(state.create_event(mailbox, args["event"], as_user=args.get("as_user"),
                                            calendar_id=args.get("calendar_id")), 201)
    if len(segs) == 3 and segs[0] == "events" and segs[2] == "move" and method == "POST":
        args = _only(body, "calendar_id")
        return _json(state.move_event(segs[1], str(args.get("calendar_id") or "")))
    if len(segs) == 2 and segs[0] == "events":
        if method == "PATCH":
            args = _only(body, "changes", "as_user")
            return _json(state.update_event(segs[1], dict(args.get("changes") or {}), as_user=args.get("as_user")))
        if method == "DELETE":
            state.delete_event(segs[1], as_user=request.args.get("as_user"))
            return _json(None, 204)
    return _json({"error": {"code": "NotFound", "message": f"No control route {method} {request.path}"}}, 404)
