"""An HTTP client of the app for the local stack, the tests and the benchmarks: the function key on every request,
and on a system's routes that system's `x-system-key`, which it gets by creating the system with the master key
the first time it sees it (as an operator would), so callers need not care about system keys.

Keys are remembered per app URL and system for the life of the process. Tests that exercise the keys themselves
use plain `requests` instead.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import requests

SYSTEM_KEY_HEADER = "x-system-key"
# /api/systems/{system}/...: not the operator's own routes (/systems/{system} and /systems/{system}/keys...).
_SYSTEM_PATH = re.compile(r"^(/[^/?]+)/systems/([^/?]+)/(?!keys(?:[/?]|$))[^?]")

_keys: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


class ApiClient:
    """`requests` against the app, JSON in and out: `.get/.put/.post/.patch/.delete(path, ...)`, `.session`,
    `.base`. With `master_key`, a system's key is provisioned on first use (see the module's docstring)."""

    def __init__(self, base: str, key: str | None, *, master_key: str | None = None, timeout: float = 30) -> None:
        self.base = base
        self.master_key = master_key
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.key = key
        if key:
            self.session.headers["x-functions-key"] = key

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        matched = _SYSTEM_PATH.match(path)
        system = matched.group(2) if matched and self.key and self.master_key else None
        if matched is None or system is None:
            return self.session.request(method, f"{self.base}{path}", **kwargs)
        headers = dict(kwargs.pop("headers", None) or {})
        for fresh in (False, True):
            key = self.system_key(system, fresh=fresh, prefix=matched.group(1))
            if key:
                headers[SYSTEM_KEY_HEADER] = key
            response = self.session.request(method, f"{self.base}{path}", headers=headers, **kwargs)
            if response.status_code != 403 or not key or _code(response) != "system_key_invalid":
                return response
        return response  # a new key did not help either: the caller sees the 403

    def system_key(self, system: str, *, fresh: bool = False, prefix: str = "/api") -> str | None:
        """This system's key at this app: remembered, or provisioned with the master key (None when the master key
        is not known or the app refuses the system ID)."""
        if not self.master_key:
            return None
        with _lock:
            known = _keys.get((self.base, system))
            if known and not fresh:
                return known
            key = _provision(f"{self.base}{prefix}", self.master_key, system)
            if key:
                _keys[(self.base, system)] = key
            return key


def _code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("code", ""))
    except (ValueError, AttributeError):
        return ""


def _provision(api: str, master_key: str, system: str) -> str | None:
    """Create the system; when it exists (another client, another process of the same storage), add a key, and
    when it already has two, revoke the oldest first. Its own session: nothing of this reaches callers' hooks."""
    session = requests.Session()
    session.trust_env = False
    session.headers["x-functions-key"] = master_key
    try:
        created = session.post(f"{api}/systems/{system}", timeout=30)
        if created.status_code == 201:
            return str(created.json()["key"])
        if created.status_code != 409:
            return None
        added = session.post(f"{api}/systems/{system}/keys", timeout=30)
        if added.status_code == 409:
            listed = session.get(f"{api}/systems/{system}/keys", timeout=30).json().get("keys", [])
            if listed:
                oldest = min(listed, key=lambda k: k["created_at"])["key_id"]
                session.delete(f"{api}/systems/{system}/keys/{oldest}", timeout=30)
            added = session.post(f"{api}/systems/{system}/keys", timeout=30)
        return str(added.json()["key"]) if added.status_code == 201 else None
    finally:
        session.close()
