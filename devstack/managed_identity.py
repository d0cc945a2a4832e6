"""A stand-in for the App Service managed-identity endpoint (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).

In Azure the Functions host exposes this endpoint to the worker and `DefaultAzureCredential` gets tokens from it.
Serving the same protocol locally means the app's production credential code runs unchanged against the local
Key Vault endpoint: no branch for "local" in the app, no credential double.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

import jwt
from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from devstack.ports import HOST
from devstack.serving import serve_in_thread, shutdown

API_VERSION = "2019-08-01"
TOKEN_LIFETIME = 3600
ISSUER = "https://sts.devstack.local/"


@dataclass
class TokenAuthority:
    """Signs and checks the tokens the managed identity hands out; the Key Vault stand-in trusts it."""

    principal_id: str = "00000000-0000-0000-0000-00000000f0a1"
    tenant_id: str = "00000000-0000-0000-0000-0000000d0e5c"
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def issue(self, resource: str) -> tuple[str, int]:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": resource, "oid": self.principal_id, "tid": self.tenant_id,
                  "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME}
        return jwt.encode(claims, self.key, algorithm="HS256"), now + TOKEN_LIFETIME

    def verify(self, token: str, resource: str) -> dict[str, object] | None:
        try:
            return jwt.decode(token, self.key, algorithms=["HS256"], audience=resource, issuer=ISSUER)
        except jwt.PyJWTError:
            return None


class ManagedIdentityEndpoint:
    """Plain HTTP on loopback, as in App Service; requests must carry the `X-IDENTITY-HEADER` secret."""

    def __init__(self, authority: TokenAuthority, *, header_secret: str | None = None) -> None:
        self.authority = authority
        self.header_secret = header_secret or secrets.token_urlsafe(24)
        self._server: BaseWSGIServer | None = None
        self.url = ""

    @Request.application
    def wsgi_app(self, request: Request) -> Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.header_secret:
            return _json({"error": "invalid_request", "error_description": "X-IDENTITY-HEADER is missing or wrong"},
                         400)
        if request.args.get("api-version") != API_VERSION:
            return _json({"error": "invalid_request", "error_description": f"api-version must be {API_VERSION}"}, 400)
        resource = request.args.get("resource", "")
        if not resource.startswith("https://"):
            return _json({"error": "invalid_resource", "error_description": "resource must be an https URI"}, 400)
        resource = resource.removesuffix("/.default")
        token, expires_on = self.authority.issue(resource)
        return _json({"access_token": token, "expires_on": str(expires_on), "resource": resource,
                      "token_type": "Bearer", "client_id": self.authority.principal_id})  # nosec B105 - the OAuth token type, not a secret

    def start(self, port: int) -> ManagedIdentityEndpoint:
        self._server = serve_in_thread(self.wsgi_app, port, name="managed-identity")
        self.url = f"http://{HOST}:{self._server.server_port}/msi/token"
        return self

    def stop(self) -> None:
        shutdown(self._server)
        self._server = None

    def environment(self) -> dict[str, str]:
        """The variables App Service sets for the worker; `DefaultAzureCredential` reads them."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header_secret}


def _json(body: dict[str, object], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
