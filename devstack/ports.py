"""Loopback ports: fixed defaults for the run command, free ones for tests."""

from __future__ import annotations

import socket
import time

HOST = "127.0.0.1"

DEFAULT_PORTS = {
    "app": 7071,
    "app_https": 7443,  # the same app over HTTPS, for Microsoft Graph's change notifications
    "azurite_queue": 10001,
    "azurite_table": 10002,
    "keyvault": 8443,
    "managed_identity": 8181,
    "simulator": 9443,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def is_listening(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_listening(port: int, timeout: float = 30.0, host: str = HOST) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(port, host):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")
