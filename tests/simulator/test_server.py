"""The HTTPS server itself: connection drops on purpose, failures as JSON 500s, Graph paths while the Graph
side is absent, and a client that never finishes its TLS handshake."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time

import pytest
from werkzeug import Request, Response

from simulator import server
from simulator.core import DropConnection
from simulator.testing import http_session, start_simulator


def _drop(request: Request) -> Response:
    raise DropConnection


def _boom(request: Request) -> Response:
    raise RuntimeError("handler bug")


@pytest.fixture
def faulty(local_tls):
    running = start_simulator(local_tls, extra_handlers={"/_test/drop": _drop, "/_test/boom": _boom})
    yield running
    running.stop()


def _tcp_outcome(running, path: str) -> tuple[str, bytes]:
    """Send one request over TLS, with TLS run over memory buffers so the TCP socket stays ours to read: a
    Python SSLSocket reports a reset and a truncated close alike, and the point here is which one it was.
    Returns ("reset" or "eof", the decrypted bytes received before)."""
    context = ssl.create_default_context(cafile=str(running.ca_path))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    port = int(running.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        tls.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sock.sendall(outgoing.read())
        received = b""
        try:
            while chunk := sock.recv(65536):
                incoming.write(chunk)
                with contextlib.suppress(ssl.SSLWantReadError):
                    received += tls.read(65536)
        except ConnectionResetError:
            return "reset", received
        return "eof", received


def test_drop_connection_resets_without_an_http_answer(faulty, caplog, capfd):
    caplog.set_level(logging.DEBUG)

    assert _tcp_outcome(faulty, "/_test/drop") == ("reset", b"")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Traceback" not in capfd.readouterr().err  # socketserver prints there, bypassing logging
    outcome, body = _tcp_outcome(faulty, "/common/v2.0/.well-known/openid-configuration")
    assert outcome == "eof" and body.startswith(b"HTTP/1.1 200")


def test_requests_sees_a_connection_error(faulty):
    import requests

    with pytest.raises(requests.exceptions.ConnectionError):
        http_session(faulty.ca_path).get(f"{faulty.url}/_test/drop")


def test_unhandled_error_is_a_logged_json_500(faulty, caplog):
    response = http_session(faulty.ca_path).get(f"{faulty.url}/_test/boom")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalServerError"
    assert any(r.name == "simulator.server" and r.exc_info for r in caplog.records)


def test_graph_paths_answer_501_while_the_graph_side_is_absent(local_tls, monkeypatch):
    monkeypatch.setattr(server, "_load_graph_handler", lambda sim: None)
    running = start_simulator(local_tls)
    try:
        for path in ("/v1.0/me/events", "/_control/graph/faults"):
            response = http_session(running.ca_path).get(running.url + path)
            assert response.status_code == 501, path
    finally:
        running.stop()


def test_a_stalled_tls_handshake_does_not_block_other_clients(simulator):
    port = int(simulator.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):  # connects, never says hello
        started = time.monotonic()
        response = http_session(simulator.ca_path).get(f"{simulator.url}/common/v2.0/.well-known/openid-configuration")
        assert response.ok and time.monotonic() - started < 2


def test_unknown_identity_path_is_a_json_404(simulator):
    response = http_session(simulator.ca_path).get(f"{simulator.url}/common/oauth2/v2.0/nothing")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
