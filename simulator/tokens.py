"""Access tokens the identity side issues and the Graph side checks.

Tokens are opaque to clients (MSAL never parses an access token), so the registry maps each token string to
what it grants. Identity fills it; Graph looks tokens up on every request.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from simulator.clock import Clock


@dataclass(frozen=True)
class AccessGrant:
    token: str
    client_id: str
    tenant_id: str
    user_id: str | None  # None for an app-only (client credentials) token
    scopes: frozenset[str]
    expires_at: float  # simulator clock, epoch seconds


class TokenRegistry:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessGrant] = {}

    def issue(
        self, *, client_id: str, tenant_id: str, user_id: str | None, scopes: frozenset[str], lifetime: float = 3600
    ) -> AccessGrant:
        grant = AccessGrant(
            token="sim-at." + secrets.token_urlsafe(32),
            client_id=client_id,
            tenant_id=tenant_id,
            user_id=user_id,
            scopes=scopes,
            expires_at=self._clock.time() + lifetime,
        )
        with self._lock:
            self._tokens[grant.token] = grant
        return grant

    def lookup(self, token: str) -> AccessGrant | None:
        """The grant behind a live token; None when unknown, expired or revoked."""
        with self._lock:
            grant = self._tokens.get(token)
        if grant is None or grant.expires_at <= self._clock.time():
            return None
        return grant

    def issued(self) -> list[str]:
        """Every access token handed out and still known (leak scans look for them in the app's data)."""
        with self._lock:
            return list(self._tokens)

    def revoke_where(self, *, client_id: str | None = None, user_id: str | None = None) -> int:
        """Invalidate access tokens (e.g. when a grant is revoked or a user disabled)."""
        with self._lock:
            doomed = [
                t for t, g in self._tokens.items()
                if (client_id is None or g.client_id == client_id) and (user_id is None or g.user_id == user_id)
            ]
            for t in doomed:
                del self._tokens[t]
            return len(doomed)
