"""Threaded werkzeug servers for the local stack's endpoints, without per-request access logs."""

from __future__ import annotations

import ssl
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from devstack.ports import HOST


class QuietHandler(WSGIRequestHandler):
    """Access logs would print query strings (OAuth codes, keys): keep them out of the console."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return


def serve_in_thread(app: Any, port: int, *, name: str, ssl_context: ssl.SSLContext | None = None) -> BaseWSGIServer:
    server = make_server(HOST, port, app, threaded=True, ssl_context=ssl_context, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def shutdown(server: BaseWSGIServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
