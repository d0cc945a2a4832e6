"""Shared set-up for the change notification tests: a real HTTPS notification endpoint (werkzeug, with the local
stack's certificate) that answers the validation handshake as told and records what Graph POSTs to it, and a
Graph world whose notifications trust the local CA."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug import Request, Response
from werkzeug.serving import make_server

from devstack.tls import LocalTls
from simulator.control import Control
from tests.simulator.test_graph_support import World, build_world

APP_SCOPES = frozenset({"Calendars.ReadWrite"})


@dataclass
class Receiver:
    """One HTTPS endpoint. `validation`: "echo" (correct), "wrong", "encoded", "json", "500", "slow" (sleeps
    `delay`); `post_delay` slows notification answers; `statuses`: answers for the next notification POSTs (then
    202)."""

    tls: LocalTls
    validation: str = "echo"
    delay: float = 0.0
    post_delay: float = 0.0  # before answering a notification POST
    statuses: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    raw_queries: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, ssl_context=self.tls.server_context())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.port}/hook?tenant=t1"

    def _app(self, environ: Any, start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        token = request.args.get("validationToken")
        with self._lock:
            self.raw_queries.append(request.query_string.decode())
        if token is not None:
            with self._lock:
                self.tokens.append(token)
            mode = self.validation
            if mode == "slow":
                time.sleep(self.delay)
            if mode == "500":
                return Response("no", status=500, content_type="text/plain")
            if mode == "wrong":
                return Response(token + "x", content_type="text/plain")
            if mode == "encoded":
                return Response(request.query_string.decode().split("validationToken=")[1],
                                content_type="text/plain")
            if mode == "json":
                return Response(json.dumps(token), content_type="application/json")
            return Response(token, content_type="text/plain; charset=utf-8")
        body = json.loads(request.get_data() or b"{}")
        if self.post_delay:
            time.sleep(self.post_delay)
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 202
            self.posts.append({"status": status, "body": body})
        return Response(status=status)

    def notifications(self, *, delivered_only: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            return [n for p in self.posts if not delivered_only or 200 <= p["status"] < 300
                    for n in p["body"].get("value", [])]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_receiver(tls: LocalTls) -> Iterator[Receiver]:
    """For a fixture: a running Receiver, stopped afterwards."""
    made = Receiver(tls)
    yield made
    made.stop()


def notify_world(tls: LocalTls) -> Iterator[World]:
    """For a fixture: the Graph test world, notifications sent at once (latency 0) and verified against the local
    CA; its delivery stops afterwards."""
    world = build_world()
    world.sim.notification_ca = tls.ca_path
    Control(world.sim).set_notification_latency(0)
    yield world
    world.state.close()


def expires_in(minutes: float, world: World | None = None) -> str:
    now = world.sim.clock.now() if world else datetime.now(UTC)
    return (now + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def subscription_body(receiver: Receiver, resource: str = "/me/events", minutes: float = 4000, **extra: Any,
                      ) -> dict[str, Any]:
    return {"changeType": "created,updated,deleted", "notificationUrl": receiver.url, "resource": resource,
            "expirationDateTime": expires_in(minutes), "clientState": "s3cret-state", **extra}


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())
