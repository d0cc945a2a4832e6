"""JSON batching (`POST /v1.0/$batch`), as "Combine multiple HTTP requests using JSON batching" describes it.

At most 20 requests; each is authenticated, throttled and fault-injected on its own (so a 200 envelope can hold
a 429 with its own `Retry-After`); responses come back in completion order, correlated by `id`; an item whose
`dependsOn` failed gets 424. Outlook runs at most four items of a batch at once, so 20 items that each take L
seconds take about 5·L, and a batch cannot be used to get around the per-mailbox concurrency limit.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from simulator.core import DropConnection
from simulator.graph.errors import GraphError, bad_request, error_body
from simulator.graph.http import JSON_TYPE, GraphRequest, GraphResponse, split_relative_url

log = logging.getLogger(__name__)

MAX_REQUESTS = 20
PARALLEL_ITEMS = 4
# Threads shared by all batches (each batch still runs at most PARALLEL_ITEMS items at once): starting four
# threads per envelope cost a few milliseconds per batch, which is the simulator's overhead, not Graph's latency.
_LANES = ThreadPoolExecutor(max_workers=256, thread_name_prefix="graph-batch")
_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


@dataclass
class _Item:
    id: str
    depends: list[str]
    request: GraphRequest | None
    error: GraphError | None = None


def _items(envelope: GraphRequest) -> list[_Item]:
    payload = envelope.json()
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests:
        raise bad_request("Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(requests) > MAX_REQUESTS:
        raise bad_request(f"Number of batch requests ({len(requests)}) exceeds the limit of {MAX_REQUESTS}.")
    items: list[_Item] = []
    seen: set[str] = set()
    for raw in requests:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str | int) or not str(raw["id"]):
            raise bad_request("Invalid batch payload format: every request needs an 'id'.")
        item_id = str(raw["id"])
        if item_id.lower() in seen:
            raise bad_request(f"Batch request ids must be unique; '{item_id}' is repeated.")
        seen.add(item_id.lower())
        depends = raw.get("dependsOn") or []
        if not isinstance(depends, list):
            raise bad_request("Invalid batch payload format: 'dependsOn' must be an array.")
        items.append(_Item(item_id, [str(d) for d in depends], None))
        try:
            items[-1].request = _item_request(envelope, raw)
        except GraphError as exc:
            items[-1].error = exc
    known = {i.id.lower() for i in items}
    for item in items:
        missing = [d for d in item.depends if d.lower() not in known]
        if missing:
            raise bad_request(f"Request '{item.id}' depends on unknown request '{missing[0]}'.")
    _check_acyclic(items)
    return items


def _check_acyclic(items: list[_Item]) -> None:
    graph = {i.id.lower(): [d.lower() for d in i.depends] for i in items}
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise bad_request("Batch request dependencies form a cycle.")
        state[node] = 1
        for dep in graph[node]:
            visit(dep)
        state[node] = 2

    for node in graph:
        visit(node)


def _item_request(envelope: GraphRequest, raw: dict[str, Any]) -> GraphRequest:
    method = str(raw.get("method") or "").upper()
    if method not in _METHODS:
        raise bad_request(f"Unsupported method '{raw.get('method')}' in batch request.")
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise bad_request("Every batch request needs a relative 'url'.")
    path, query = split_relative_url(url.strip())
    if path.strip("/").lower() == "$batch":
        raise bad_request("A batch request cannot contain another batch.")
    headers = {str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    body = raw.get("body")
    data = b""
    if body is not None:
        if "content-type" not in headers:
            raise bad_request("A batch request with a body must have a Content-Type header.")
        data = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    headers["authorization"] = envelope.header("authorization") or ""
    headers.setdefault("client-request-id", envelope.client_request_id)
    return GraphRequest(method, path, query, headers, data, envelope.base_url, envelope.request_id,
                        headers["client-request-id"], in_batch=True)


def _as_item(item_id: str, response: GraphResponse) -> dict[str, Any]:
    headers = dict(response.headers)
    out: dict[str, Any] = {"id": item_id, "status": response.status, "headers": headers}
    if response.body is not None:
        headers.setdefault("Content-Type", JSON_TYPE)
        out["body"] = response.body
    return out


def run_batch(envelope: GraphRequest, run_item: Callable[[GraphRequest], GraphResponse],
              record: Callable[[int], None]) -> GraphResponse:
    """Run the items (four at a time, in dependency order) and answer the 200 envelope; raise DropConnection
    after all runnable items finished if any item's connection was dropped by a fault."""
    items = _items(envelope)
    record(len(items))
    results: dict[str, GraphResponse] = {}
    order: list[str] = []
    dropped = threading.Event()
    lock = threading.Lock()

    def work(item: _Item) -> None:
        assert item.request is not None  # nosec B101 - an invariant the caller guarantees
        try:
            response = run_item(item.request)
        except DropConnection:
            dropped.set()
            response = GraphResponse(504, error_body("GatewayTimeout", "The connection was dropped.",
                                                     envelope.request_id, envelope.client_request_id))
        except Exception:  # one broken item must not take the others' answers with it
            log.exception("batch item %s failed", item.id)
            response = GraphResponse(500, error_body("generalException", "An internal error occurred.",
                                                     envelope.request_id, envelope.client_request_id))
        with lock:
            results[item.id.lower()] = response
            order.append(item.id)

    def lane(queue: list[_Item]) -> None:
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop(0)
            work(item)

    pending = list(items)
    while pending:
        ready = [i for i in pending if all(d.lower() in results for d in i.depends)]
        runnable = []
        for item in ready:
            failed = [d for d in item.depends if results[d.lower()].status >= 400]
            if item.error is not None or failed:
                err = item.error or GraphError(424, "FailedDependency",
                                               f"The request depends on request '{failed[0]}', which failed.")
                results[item.id.lower()] = GraphResponse(
                    err.status, error_body(err.code, err.message, envelope.request_id,
                                           envelope.client_request_id), err.headers)
                order.append(item.id)
            else:
                runnable.append(item)
        queue = list(runnable)
        lanes = [_LANES.submit(lane, queue) for _ in range(min(PARALLEL_ITEMS, len(runnable)))]
        for future in lanes:
            future.result()
        pending = [i for i in pending if i.id.lower() not in results]
    if dropped.is_set():
        raise DropConnection("a fault dropped the connection of a batch item")
    by_id = {i.id.lower(): i.id for i in items}
    return GraphResponse(200, {"responses": [_as_item(by_id[k.lower()], results[k.lower()]) for k in order]})
