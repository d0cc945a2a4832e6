"""LocalFunctionsHost: serves a `func.FunctionApp` the way `func start` would, without the .NET host.

A thin adapter over `FunctionApp.get_functions()`: the same registered functions, bindings and auth levels that
Azure indexes, so what runs locally is what deploys. Configuration is resolved up front, and a bad schedule,
unset `%SETTING%` or unsupported binding fails construction instead of surfacing at the first trigger.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.functions.timer import TimerRequest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from devstack.host.catalog import FunctionSpec, load_functions
from devstack.host.config import HostConfig, resolve_settings
from devstack.host.http import HttpFrontend, auth_level, http_methods
from devstack.host.invoke import FunctionFailed, Invoker
from devstack.host.queues import QueueListener, QueueSender
from devstack.host.timers import NcrontabSchedule, TimerRunner

logger = logging.getLogger("devstack.host")
STOP_TIMEOUT_SECONDS = 5.0


class _QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's access log prints the request line, query string (and `code` key) included: not here.

    The host logs one line per invocation instead.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log_error(self, format: str, *args: Any) -> None:
        logger.debug("HTTP server rejected a malformed request")


class LocalFunctionsHost:
    def __init__(self, app: func.FunctionApp, *, host_json: dict[str, Any], env: Mapping[str, str],
                 function_key: str, master_key: str, storage_connection_string: str | None = None) -> None:
        if not function_key or not master_key:
            raise ValueError("function_key and master_key must be non-empty")
        self._config = HostConfig.from_host_json(host_json)
        lease = env.get("DEVSTACK_QUEUE_LEASE_SECONDS")
        if lease:
            self._config = dataclasses.replace(
                self._config, queues=dataclasses.replace(self._config.queues, lease_seconds=float(lease)))
        self._connection_string = storage_connection_string
        self._specs = load_functions(app)
        self._by_name = {spec.name.lower(): spec for spec in self._specs}
        self._schedules = {
            spec.name: NcrontabSchedule(resolve_settings(spec.trigger.schedule, env, f"timer '{spec.name}'"))
            for spec in self._specs if spec.kind == "timer"
        }
        self._queue_names = {
            spec.name: resolve_settings(spec.trigger.queue_name, env, f"queue trigger '{spec.name}'")
            for spec in self._specs if spec.kind == "queue"
        }
        sender = QueueSender(storage_connection_string, use_base64=self._config.queues.base64) \
            if storage_connection_string else None
        self._invoker = Invoker(self._specs, env, sender)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._admin_pool: ThreadPoolExecutor | None = None
        self._server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self._https_server: BaseWSGIServer | None = None
        self._https_thread: threading.Thread | None = None
        self._timers: list[TimerRunner] = []
        self._listeners: list[QueueListener] = []
        self.wsgi_app = HttpFrontend(self._specs, route_prefix=self._config.route_prefix, function_key=function_key,
                                     master_key=master_key, invoker=self._invoker, admin_invoke=self._invoke_later)

    def start(self, host: str = "127.0.0.1", port: int = 7071, *, https_port: int | None = None,
              ssl_context: ssl.SSLContext | None = None) -> None:
        """Serve HTTP on a thread (and, with `https_port`, the same app over HTTPS with `ssl_context` on another:
        Microsoft Graph posts change notifications to https URLs only), then start queue listeners and timers
        (run_on_startup ones fire now)."""
        if self._server is not None:
            raise RuntimeError("the host is already started")
        if self._queue_names and not self._connection_string:
            raise ValueError("queue-triggered functions need storage_connection_string")
        if (https_port is None) != (ssl_context is None):
            raise ValueError("https_port and ssl_context go together")
        self._stop.clear()
        self._server = make_server(host, port, self.wsgi_app, threaded=True, request_handler=_QuietRequestHandler)
        self._server_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                               name="devstack-host-http", daemon=True)
        self._server_thread.start()
        try:
            if https_port is not None:
                self._https_server = make_server(host, https_port, self.wsgi_app, threaded=True,
                                                 ssl_context=ssl_context, request_handler=_QuietRequestHandler)
                self._https_thread = threading.Thread(target=self._https_server.serve_forever,
                                                      kwargs={"poll_interval": 0.1}, name="devstack-host-https",
                                                      daemon=True)
                self._https_thread.start()
            for spec in self._specs:
                if spec.kind == "queue" and self._connection_string:
                    listener = QueueListener(spec, self._queue_names[spec.name], self._config.queues,
                                             self._connection_string, self._invoker.run, self._stop)
                    self._listeners.append(listener)
                    listener.start()
            for spec in self._specs:
                if spec.kind == "timer":
                    timer = TimerRunner(spec, self._schedules[spec.name], self._run_timer, self._stop)
                    self._timers.append(timer)
                    timer.start()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop polling and scheduling at once; give running functions a few seconds to finish."""
        self._stop.set()
        for server in (self._server, self._https_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in (self._server_thread, self._https_thread):
            if thread is not None:
                thread.join(STOP_TIMEOUT_SECONDS)
        self._server = self._server_thread = self._https_server = self._https_thread = None
        for timer in self._timers:
            timer.join(STOP_TIMEOUT_SECONDS)
        for listener in self._listeners:
            listener.join(STOP_TIMEOUT_SECONDS)
        self._timers, self._listeners = [], []
        with self._lock:
            pool, self._admin_pool = self._admin_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._invoker.close()

    def invoke(self, name: str, input: str = "") -> None:
        """Run a timer or queue function now, as `POST /admin/functions/{name}` does, but wait for it.

        Raises FunctionFailed (the function's exception is its `__cause__`, already logged) so an in-process
        caller sees the failure; KeyError for an unknown name, ValueError for an HTTP function.
        """
        spec = self._by_name.get(name.lower())
        if spec is None:
            raise KeyError(f"no function named '{name}'")
        if spec.kind == "http":
            raise ValueError(f"'{spec.name}' is HTTP-triggered: call its route instead")
        self._run_now(spec, input)

    def describe(self) -> list[dict[str, Any]]:
        """One entry per function for the start banner, in registration order."""
        lines: list[dict[str, Any]] = []
        for spec in self._specs:
            line: dict[str, Any] = {"name": spec.name, "trigger": spec.kind}
            if spec.kind == "http":
                template = spec.trigger.route or spec.name
                line["route"] = "/" + "/".join(p for p in (self._config.route_prefix, template.strip("/")) if p)
                line["methods"] = http_methods(spec) or ["*"]
                line["auth_level"] = auth_level(spec)
            elif spec.kind == "timer":
                line["schedule"] = self._schedules[spec.name].expression
                line["run_on_startup"] = bool(spec.trigger.run_on_startup)
            else:
                line["queue"] = self._queue_names[spec.name]
            lines.append(line)
        return lines

    def _invoke_later(self, spec: FunctionSpec, input: str) -> None:
        with self._lock:
            if self._admin_pool is None:
                self._admin_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="devstack-admin")
            pool = self._admin_pool
        pool.submit(self._run_quietly, spec, input)

    def _run_quietly(self, spec: FunctionSpec, input: str) -> None:
        try:
            self._run_now(spec, input)
        except FunctionFailed:  # already logged
            return

    def _run_now(self, spec: FunctionSpec, input: str) -> None:
        if spec.kind == "timer":
            self._run_timer(spec, TimerRequest(past_due=False))
            return
        now = datetime.now(UTC)
        message = FunctionQueueMessage(id=str(uuid.uuid4()), body=input.encode("utf-8"), dequeue_count=1,
                                       insertion_time=now, expiration_time=now + timedelta(days=7))
        self._invoker.run(spec, message, "admin")

    def _run_timer(self, spec: FunctionSpec, request: TimerRequest) -> None:
        self._invoker.run(spec, request, f"past_due={request.past_due}")
