"""A Key Vault-compatible HTTPS endpoint for local runs and tests (no Key Vault emulator exists in the registries).

It implements the part of the secrets REST API that `azure-keyvault-secrets` uses, including challenge-based
authentication: a request without a bearer token gets 401 with the `WWW-Authenticate` challenge, the SDK then asks
its credential for a token and retries. Tokens must come from the local managed-identity endpoint. Soft delete is
modelled (delete, get deleted, purge, recover) because the SDK's delete poller relies on it.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from devstack.managed_identity import TokenAuthority
from devstack.ports import HOST
from devstack.serving import serve_in_thread, shutdown
from devstack.tls import LocalTls

RESOURCE = "https://vault.azure.net"
NAME_RE = re.compile(r"[0-9a-zA-Z-]{1,127}")
RETENTION_DAYS = 90


@dataclass
class _Version:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str]
    enabled: bool
    expires: int | None
    not_before: int | None
    created: int
    updated: int


@dataclass
class _Secret:
    versions: list[_Version] = field(default_factory=list)
    deleted_at: int | None = None


class KeyVaultEndpoint:
    """In-memory vault. Thread-safe; every request is authenticated against the token authority."""

    def __init__(self, authority: TokenAuthority, tls: LocalTls) -> None:
        self.authority = authority
        self.tls = tls
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}
        self._server: BaseWSGIServer | None = None
        self.url = ""
        self.requests_seen = 0
        self.available = True  # tests flip this to see the app report Key Vault as down

    # --- HTTP plumbing -------------------------------------------------------------------------------------------

    @Request.application
    def wsgi_app(self, request: Request) -> Response:
        with self._lock:
            self.requests_seen += 1
        if not self.available:
            return _error(503, "ServiceUnavailable", "The vault is unavailable (simulated outage)")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or self.authority.verify(auth[7:], RESOURCE) is None:
            challenge = (f'Bearer authorization="https://login.microsoftonline.com/{self.authority.tenant_id}", '
                         f'resource="{RESOURCE}"')
            resp = _error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
            resp.headers["WWW-Authenticate"] = challenge
            return resp
        if not request.args.get("api-version"):
            return _error(400, "BadParameter", "api-version is required")
        try:
            return self._route(request)
        except _Fail as fail:
            return _error(fail.status, fail.code, fail.message)

    def _route(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if parts == ["secrets"] and method == "GET":
            return _json(self._list(request.host_url))
        if len(parts) >= 2 and parts[0] == "secrets":
            name = _valid_name(parts[1])
            if len(parts) == 2 and method == "PUT":
                return _json(self._set(name, _body(request), request.host_url))
            if len(parts) == 2 and method == "DELETE":
                return _json(self._delete(name, request.host_url))
            if len(parts) == 2 and method == "GET":
                return _json(self._get(name, None, request.host_url))
            if len(parts) == 3 and parts[2] == "versions" and method == "GET":
                return _json(self._versions(name, request.host_url))
            if len(parts) == 3 and method == "GET":
                return _json(self._get(name, parts[2], request.host_url))
            if len(parts) == 3 and method == "PATCH":
                return _json(self._update(name, parts[2], _body(request), request.host_url))
        if parts == ["deletedsecrets"] and method == "GET":
            return _json(self._list_deleted(request.host_url))
        if len(parts) >= 2 and parts[0] == "deletedsecrets":
            name = _valid_name(parts[1])
            if len(parts) == 2 and method == "GET":
                return _json(self._get_deleted(name, request.host_url))
            if len(parts) == 2 and method == "DELETE":
                self._purge(name)
                return Response(status=204)
            if len(parts) == 3 and parts[2] == "recover" and method == "POST":
                return _json(self._recover(name, request.host_url))
        raise _Fail(400, "BadParameter", f"Unsupported operation {method} {request.path}")

    def start(self, port: int) -> KeyVaultEndpoint:
        self._server = serve_in_thread(self.wsgi_app, port, name="keyvault", ssl_context=self.tls.server_context())
        self.url = f"https://{HOST}:{self._server.server_port}/"
        return self

    def stop(self) -> None:
        shutdown(self._server)
        self._server = None

    # --- operations ----------------------------------------------------------------------------------------------

    def _live(self, name: str) -> _Secret:
        secret = self._secrets.get(name)
        if secret is None or secret.deleted_at is not None or not secret.versions:
            raise _Fail(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault.")
        return secret

    def _set(self, name: str, body: dict[str, Any], base: str) -> dict[str, Any]:
        value = body.get("value")
        if not isinstance(value, str):
            raise _Fail(400, "BadParameter", "Property 'value' is required and must be a string")
        attrs = body.get("attributes") or {}
        now = int(time.time())
        version = _Version(uuid.uuid4().hex, value, body.get("contentType"), dict(body.get("tags") or {}),
                           attrs.get("enabled", True), attrs.get("exp"), attrs.get("nbf"), now, now)
        with self._lock:
            secret = self._secrets.get(name)
            if secret is not None and secret.deleted_at is not None:
                raise _Fail(409, "Conflict", f"Secret {name} is currently in a deleted but recoverable state.")
            self._secrets.setdefault(name, _Secret()).versions.append(version)
        return _bundle(base, name, version, with_value=True)

    def _get(self, name: str, version_id: str | None, base: str) -> dict[str, Any]:
        with self._lock:
            secret = self._live(name)
            version = secret.versions[-1] if not version_id else next(
                (v for v in secret.versions if v.version == version_id), None)
        if version is None:
            raise _Fail(404, "SecretNotFound", f"A secret with (name/id) {name}/{version_id} was not found.")
        if not version.enabled:
            raise _Fail(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return _bundle(base, name, version, with_value=True)

    def _update(self, name: str, version_id: str, body: dict[str, Any], base: str) -> dict[str, Any]:
        with self._lock:
            secret = self._live(name)
            version = next((v for v in secret.versions if v.version == version_id), None)
            if version is None:
                raise _Fail(404, "SecretNotFound", f"A secret with (name/id) {name}/{version_id} was not found.")
            attrs = body.get("attributes") or {}
            version.enabled = attrs.get("enabled", version.enabled)
            version.expires = attrs.get("exp", version.expires)
            version.not_before = attrs.get("nbf", version.not_before)
            if "tags" in body:
                version.tags = dict(body["tags"] or {})
            if "contentType" in body:
                version.content_type = body["contentType"]
            version.updated = int(time.time())
        return _bundle(base, name, version, with_value=False)

    def _list(self, base: str) -> dict[str, Any]:
        with self._lock:
            live = [(n, s.versions[-1]) for n, s in sorted(self._secrets.items())
                    if s.deleted_at is None and s.versions]
        return {"value": [_item(n, v, base) for n, v in live], "nextLink": None}

    def _list_deleted(self, base: str) -> dict[str, Any]:
        with self._lock:
            gone = [(n, s) for n, s in sorted(self._secrets.items()) if s.deleted_at is not None]
            return {"value": [_deleted_bundle(base, n, s) for n, s in gone], "nextLink": None}

    def _versions(self, name: str, base: str) -> dict[str, Any]:
        with self._lock:
            secret = self._live(name)
            items = [_item(name, v, base, versioned=True) for v in secret.versions]
        return {"value": items, "nextLink": None}

    def _delete(self, name: str, base: str) -> dict[str, Any]:
        with self._lock:
            secret = self._live(name)
            secret.deleted_at = int(time.time())
            return _deleted_bundle(base, name, secret)

    def _get_deleted(self, name: str, base: str) -> dict[str, Any]:
        with self._lock:
            secret = self._secrets.get(name)
            if secret is None or secret.deleted_at is None:
                raise _Fail(404, "SecretNotFound", f"Deleted Secret not found: {name}")
            return _deleted_bundle(base, name, secret)

    def _purge(self, name: str) -> None:
        with self._lock:
            secret = self._secrets.get(name)
            if secret is None or secret.deleted_at is None:
                raise _Fail(404, "SecretNotFound", f"Deleted Secret not found: {name}")
            del self._secrets[name]

    def _recover(self, name: str, base: str) -> dict[str, Any]:
        with self._lock:
            secret = self._secrets.get(name)
            if secret is None or secret.deleted_at is None:
                raise _Fail(404, "SecretNotFound", f"Deleted Secret not found: {name}")
            secret.deleted_at = None
            return _bundle(base, name, secret.versions[-1], with_value=False)


class _Fail(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _valid_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise _Fail(400, "BadParameter", "Secret names may only contain alphanumeric characters and dashes")
    return name


def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise _Fail(400, "BadParameter", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Fail(400, "BadParameter", "The request body must be a JSON object")
    return body


def _attributes(v: _Version) -> dict[str, Any]:
    attrs: dict[str, Any] = {"enabled": v.enabled, "created": v.created, "updated": v.updated,
                             "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": RETENTION_DAYS}
    if v.expires is not None:
        attrs["exp"] = v.expires
    if v.not_before is not None:
        attrs["nbf"] = v.not_before
    return attrs


def _bundle(base: str, name: str, v: _Version, *, with_value: bool) -> dict[str, Any]:
    bundle: dict[str, Any] = {"id": f"{base}secrets/{name}/{v.version}", "attributes": _attributes(v),
                              "tags": v.tags}
    if v.content_type:
        bundle["contentType"] = v.content_type
    if with_value:
        bundle["value"] = v.value
    return bundle


def _item(name: str, v: _Version, base: str = "", *, versioned: bool = False) -> dict[str, Any]:
    ident = f"{base}secrets/{name}/{v.version}" if versioned else f"{base}secrets/{name}"
    return {"id": ident, "attributes": _attributes(v), "tags": v.tags, "contentType": v.content_type}


def _deleted_bundle(base: str, name: str, secret: _Secret) -> dict[str, Any]:
    bundle = _bundle(base, name, secret.versions[-1], with_value=False)
    deleted = secret.deleted_at or 0
    bundle.update({"recoveryId": f"{base}deletedsecrets/{name}", "deletedDate": deleted,
                   "scheduledPurgeDate": deleted + RETENTION_DAYS * 86400})
    return bundle


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)
