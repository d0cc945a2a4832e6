"""`python -m bench.simulator_process --port N --tls-dir D`: the Microsoft simulator in its own process, with the
benchmark's request timeline at `/_bench/timeline`, until SIGTERM or SIGINT (bench.stack.SimulatorProcess).

Served over HTTPS by a small HTTP/1.1 server that keeps connections alive, as Microsoft Graph does. The werkzeug
development server the tests use closes the connection after every response (werkzeug always sends
`Connection: close`), so each request pays a new TCP and TLS handshake: about 12 ms per request on this kind of
machine, a cost no client of the real Graph pays, and one that would weigh on a one-request-per-event client far
more than on a batching one. The simulator itself (its WSGI application: Graph semantics, throttling, latency) is
the same object either way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote_to_bytes

from bench.stack import timed_simulator_app
from simulator.__main__ import load_or_create_tls

log = logging.getLogger("bench.simulator")
IDLE_SECONDS = 120


class KeepAliveWsgiHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with persistent connections in front of a WSGI app. Request bodies need Content-Length (what
    `requests` and the Azure SDKs send); responses are buffered and sent with their length."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    server: KeepAliveWsgiServer

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        try:
            self.connection.do_handshake()  # here, in the connection's thread, not in the accept loop
        except (OSError, ValueError):
            self.close_connection = True
            return
        with contextlib.suppress(OSError, ssl.SSLError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length) if length else "",
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        try:
            result = self.server.app(environ, start_response)
            try:
                data = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # a fault that drops the connection (DropConnection) or a simulator bug: cut it
            log.debug("request %s %s ended without an answer", self.command, path, exc_info=True)
            self.close_connection = True
            return
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response_only(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class KeepAliveWsgiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Any, context: ssl.SSLContext) -> None:
        super().__init__(address, KeepAliveWsgiHandler)
        self.app = app
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulator_process", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Latency is injected as sleeps: hand the GIL over sooner (default 5 ms) so a request thread whose latency
    # has passed answers on time while other requests are being processed.
    sys.setswitchinterval(0.0005)
    tls = load_or_create_tls(args.tls_dir)
    app, _ = timed_simulator_app()
    server = KeepAliveWsgiServer(("127.0.0.1", args.port), app, tls.server_context())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="simulator",
                              daemon=True)
    thread.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

