"""The simulator's HTTPS server: one WSGI app composing the identity platform, Graph and the control API.

Two behaviours matter beyond routing. A handler can raise `DropConnection` to make the TCP connection die
without an HTTP answer (a reset, as when a proxy or the network fails mid-request), which is how fault
injection reproduces "the create succeeded but the client never heard". And the TLS handshake runs in the
request's worker thread, not in the accept loop, so one client that never finishes its handshake cannot
stall every other client.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug import Request, Response
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from simulator.control import make_control_handler
from simulator.core import DropConnection, Simulator
from simulator.identity.api import make_identity_handler
from simulator.identity.keys import SigningKey
from simulator.identity.web import json_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from devstack.tls import LocalTls

Handler = Callable[[Request], Response]
GRAPH_PREFIXES = ("/v1.0/", "/_control/graph/")
REQUEST_SOCKET_TIMEOUT = 120.0

logger = logging.getLogger("simulator.server")
access_log = logging.getLogger("simulator.http")


class _AbortConnection(ConnectionError):
    """What a DropConnection becomes inside the server: werkzeug treats ConnectionError as "the client went
    away", writes nothing and prints no traceback, and hands it to `connection_dropped` below."""


def is_graph_path(path: str) -> bool:
    return path == "/v1.0" or path.startswith(GRAPH_PREFIXES)


def _load_graph_handler(sim: Simulator) -> Handler | None:
    """The Graph side is built in parallel; while its module is missing (or cannot be imported yet), its paths
    answer 501 and the identity side stays usable. An import failure other than absence is logged loudly."""
    try:
        module = importlib.import_module("simulator.graph.api")
    except ImportError as exc:
        if not (isinstance(exc, ModuleNotFoundError) and exc.name == "simulator.graph.api"):
            logger.error("the Graph side failed to import; its paths will answer 501: %s", exc)
        return None
    factory = getattr(module, "make_graph_handler", None)
    return factory(sim) if factory is not None else None


class _Handlers:
    def __init__(self, sim: Simulator, key: SigningKey, reset: Callable[[], Simulator]) -> None:
        self.sim = sim
        self.identity = make_identity_handler(sim, key)
        self.control = make_control_handler(sim, reset=reset)
        self.graph = _load_graph_handler(sim)


class SimulatorApp:
    """The WSGI application. `install` swaps in another Simulator (fresh state) without restarting the server,
    which lets a test session share one HTTPS server while every test starts clean."""

    def __init__(self, sim: Simulator, *, key: SigningKey | None = None,
                 extra_handlers: Mapping[str, Handler] | None = None) -> None:
        self._key = key or SigningKey.generate()
        self._extra = dict(extra_handlers or {})
        self._lock = threading.Lock()
        self._handlers = _Handlers(sim, self._key, self.reset)
        self.on_install: list[Callable[[Simulator], None]] = []  # told whenever another Simulator goes in

    @property
    def sim(self) -> Simulator:
        return self._handlers.sim

    def install(self, sim: Simulator) -> None:
        handlers = _Handlers(sim, self._key, self.reset)
        with self._lock:
            previous, self._handlers = self._handlers.sim, handlers
        for listener in self.on_install:
            listener(sim)
        close = getattr(previous.graph, "close", None) if previous is not sim else None
        if close is not None:
            close()  # the old Simulator's change notifications stop with it

    def reset(self) -> Simulator:
        sim = Simulator()
        self.install(sim)
        return sim

    def dispatch(self, request: Request) -> Response:
        handlers = self._handlers
        path = request.path
        if is_graph_path(path):
            if handlers.graph is None:
                return json_response(
                    {"error": {"code": "NotImplemented", "message": "The Graph side of the simulator is not built."}},
                    501,
                )
            return handlers.graph(request)
        for prefix, handler in self._extra.items():
            if path.startswith(prefix):
                return handler(request)
        if path.startswith("/_control/"):
            return handlers.control(request)
        return handlers.identity(request)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except DropConnection:
            raise _AbortConnection("dropped on purpose") from None
        except Exception:
            logger.exception("unhandled error on %s %s", request.method, request.path)
            response = json_response(
                {"error": {"code": "InternalServerError", "message": "The simulator failed; see its log."}}, 500
            )
        return response(environ, start_response)


class _RequestHandler(WSGIRequestHandler):
    timeout = REQUEST_SOCKET_TIMEOUT

    def handle(self) -> None:
        # The listening socket does not handshake on accept (see make_https_server); do it here, where a
        # silent or broken client only costs its own thread.
        try:
            self.connection.do_handshake()
        except (OSError, ValueError) as exc:
            self.close_connection = True
            access_log.debug("TLS handshake with %s failed: %s", self.client_address, exc)
            return
        super().handle()

    def connection_dropped(self, error: BaseException, environ: WSGIEnvironment | None = None) -> None:
        if isinstance(error, _AbortConnection):
            self._reset_connection()

    def _reset_connection(self) -> None:
        """Close with SO_LINGER 0, so the peer gets a TCP RST rather than an orderly close: the same thing a
        client sees when a connection is cut mid-request."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The request's reader holds a reference that keeps the descriptor open; release it first so close()
        # really closes now, before socketserver's orderly shutdown could send a FIN. (The writer holds none,
        # and must stay open: the base handler flushes it after this returns.)
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            sock.close()

    def log(self, type: str, message: str, *args: Any) -> None:
        level = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.WARNING}.get(type, logging.INFO)
        access_log.log(level, "%s - %s", self.address_string(), message % args if args else message)


def make_https_server(app: SimulatorApp, tls: LocalTls, host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    """A threaded werkzeug server whose TLS handshakes happen per connection in worker threads."""
    server = make_server(host, port, app, threaded=True, request_handler=_RequestHandler)
    context = tls.server_context()
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.ssl_context = context  # werkzeug reads it to set wsgi.url_scheme and to recognise SSL errors
    return server
