"""One HTTP transport for the storage SDK clients of a process, and a count of the requests that go through it.

The SDKs' default transport keeps a pool of 10 connections per host and consults proxy environment variables on
every request; a bulk export runs 16 workers against one storage account, so connections were dropped and
reopened and time went into environment scans. A shared session with a larger pool and `trust_env` off (no
proxy is used to reach Azure Storage from a Function App) avoids both.

Every table and queue request the app makes passes here, so the counter (`storage_requests`) sees them all, by
operation: what the benchmarks print as the cost of a pull or an export, and what a change to the storage design
is measured by. Counting is a dictionary increment per request.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport

POOL_SIZE = 64


class RequestCounter:
    """Table and queue requests by `service.operation resource` (e.g. `table.get connections`,
    `table.transaction roomsync`, `queue.send room-pull`), and the bytes of their answers. A caller may label
    the requests its thread makes (`with counter.scope("pull"):`), so a benchmark tells one kind of work from
    another; labelled counts are keyed `label: operation`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._bytes = 0
        # A context variable, not a thread-local: work a caller hands to a pool with its context keeps the label.
        self._label: contextvars.ContextVar[str | None] = contextvars.ContextVar("storage_label", default=None)

    @contextlib.contextmanager
    def scope(self, label: str) -> Iterator[None]:
        token = self._label.set(label)
        try:
            yield
        finally:
            self._label.reset(token)

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        name = operation(request.method or "", request.url or "", request.headers.get("If-Match"), request.body)
        label = self._label.get()
        if label:
            name = f"{label}: {name}"
        size = len(response.content or b"")
        with self._lock:
            self._counts[name] += 1
            self._bytes += size

    def snapshot(self) -> tuple[Counter[str], int]:
        with self._lock:
            return Counter(self._counts), self._bytes

    def take(self) -> tuple[Counter[str], int]:
        """The counts and bytes since the last take, and start again."""
        with self._lock:
            taken = self._counts, self._bytes
            self._counts, self._bytes = Counter(), 0
            return taken


def operation(method: str, url: str, if_match: str | None = None, body: Any = None) -> str:
    """What a storage request does, from its method and URL (Azure's host-style URLs and Azurite's path-style
    ones, whose first segment is the account); a transaction is named by the table of its first operation."""
    segments = [unquote(s) for s in urlsplit(url).path.split("/") if s]
    if "messages" in segments:  # <queue>/messages[/<id>]
        queue = segments[segments.index("messages") - 1]
        by_method = {"POST": "send", "GET": "receive", "DELETE": "delete", "PUT": "update"}
        return f"queue.{by_method.get(method, method.lower())} {queue}"
    last = segments[-1] if segments else ""
    if last == "$batch":
        return f"table.transaction {_transaction_table(body)}".rstrip()
    if last.startswith("Tables"):
        return "table.admin"
    resource, paren, keys = last.partition("(")
    if not paren:  # an insert, or a queue's own URL (create, properties)
        return f"table.insert {resource}" if method == "POST" else f"queue.admin {resource}"
    if method == "GET":
        return f"table.{'get' if keys.rstrip(')') else 'query'} {resource}"
    if method in ("PUT", "PATCH", "MERGE"):
        return f"table.{'update' if if_match else 'upsert'} {resource}"  # If-Match * updates only an existing row
    return f"table.{method.lower()} {resource}"


def _transaction_table(body: Any) -> str:
    """The table named by the first request line of a transaction's body (`METHOD <url> HTTP/1.1`)."""
    if not isinstance(body, bytes):
        return ""
    head = body[:4096]
    end = head.find(b" HTTP/1.1")
    if end < 0:
        return ""
    url = head[head.rfind(b" ", 0, end) + 1:end].decode(errors="replace")
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1].partition("(")[0])


_COUNTER = RequestCounter()


def storage_requests() -> RequestCounter:
    """The process's counter of storage requests (all clients built on `storage_transport`)."""
    return _COUNTER


@functools.cache
def storage_transport() -> RequestsTransport:
    """The app's storage transport: every request counted."""
    return pooled_transport(hook=_COUNTER.hook)


def pooled_transport(*, hook: Any = None) -> RequestsTransport:
    """A transport on one session with a large pool and `trust_env` off, for storage clients to share (the local
    host's queue listener builds its own, so the app's count holds only the app's requests)."""
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if hook is not None:
        session.hooks["response"].append(hook)
    return RequestsTransport(session=session, session_owner=False)
