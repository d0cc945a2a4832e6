"""Server-side state of the identity platform: pending sign-ins, authorization codes, refresh-token families,
user consents and session revocations.

Everything a browser or client could tamper with (which app, which redirect URI, which scopes, which
account) lives here keyed by an opaque ID, never in hidden form fields or in the tokens themselves.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from simulator.core import Simulator
from simulator.identity.keys import SigningKey

DAY = 86_400.0


@dataclass
class Settings:
    """Lifetimes the Microsoft facts fix; tests may shorten them, the defaults are Microsoft's."""

    code_lifetime: float = 600.0  # authorization codes: 10 minutes
    access_token_lifetime: int = 3599  # Microsoft answers 3599 for a default (60-90 min) token
    refresh_token_max_inactive: float = 90 * DAY  # AADSTS700082 beyond this idle time
    pending_lifetime: float = 3600.0  # an unfinished sign-in page stays usable this long
    prune_every: int = 512  # issued codes/tokens between sweeps of dead ones (long benchmark runs)


@dataclass
class PendingAuthorization:
    """One authorize request between the first GET and the final redirect (account pick, then consent)."""

    id: str
    tenant_segment: str
    client_id: str
    redirect_uri: str
    response_mode: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    login_hint: str | None
    domain_hint: str | None
    prompt: str | None
    want_client_info: bool
    created_at: float
    user_id: str | None = None  # set once the account is chosen


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    tenant_id: str
    scopes: frozenset[str]
    nonce: str | None
    code_challenge: str
    issued_at: float
    auth_time: float
    redeemed: bool = False


@dataclass
class RefreshFamily:
    """All refresh tokens descending from one sign-in; revoking the grant kills the whole family."""

    id: str
    client_id: str
    user_id: str
    revoked_reason: str | None = None  # "consent" when the user's consent was withdrawn


@dataclass
class RefreshToken:
    token: str
    family_id: str
    client_id: str
    user_id: str
    tenant_id: str
    scopes: frozenset[str]  # what the user granted, normalised (see scopes.py)
    issued_at: float
    auth_time: float
    superseded: bool = False  # rotated out: a newer token of the family was issued from it


@dataclass
class IdentityState:
    key: SigningKey
    settings: Settings = field(default_factory=Settings)
    lock: threading.RLock = field(default_factory=threading.RLock)
    pending: dict[str, PendingAuthorization] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    families: dict[str, RefreshFamily] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    consents: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (user_id, client_id) -> scopes
    tokens_valid_from: dict[str, float] = field(default_factory=dict)  # user_id -> epoch (revokeSignInSessions)
    _issued_since_prune: int = 0

    # --- consent -------------------------------------------------------------------------------------------

    def consented_scopes(self, user_id: str, client_id: str) -> set[str]:
        with self.lock:
            return set(self.consents.get((user_id, client_id), set()))

    def record_consent(self, user_id: str, client_id: str, scopes: set[str]) -> None:
        with self.lock:
            self.consents.setdefault((user_id, client_id), set()).update(scopes)

    def withdraw_consent(self, user_id: str, client_id: str) -> int:
        """Forget the consent and kill the refresh-token families it backed; returns how many died."""
        with self.lock:
            self.consents.pop((user_id, client_id), None)
            doomed = [
                f for f in self.families.values()
                if f.user_id == user_id and f.client_id == client_id and f.revoked_reason is None
            ]
            for family in doomed:
                family.revoked_reason = "consent"
            return len(doomed)

    # --- refresh tokens ----------------------------------------------------------------------------------------

    def issue_refresh_token(
        self, *, family_id: str | None, client_id: str, user_id: str, tenant_id: str, scopes: frozenset[str],
        now: float, auth_time: float,
    ) -> RefreshToken:
        with self.lock:
            if family_id is None:
                family = RefreshFamily("fam-" + secrets.token_hex(8), client_id, user_id)
                self.families[family.id] = family
                family_id = family.id
            token = RefreshToken(
                "sim-rt." + secrets.token_urlsafe(48), family_id, client_id, user_id, tenant_id, scopes, now, auth_time
            )
            self.refresh_tokens[token.token] = token
            self.note_issued(now)
            return token

    def note_issued(self, now: float) -> None:
        """Sweep now and then, so a benchmark that refreshes for hours does not grow without bound. Dead things
        are kept a day, so a late replay still gets its specific answer (54005, 70008, 70000) rather than
        "malformed"; idle refresh tokens are never swept, they must answer AADSTS700082."""
        with self.lock:
            self._issued_since_prune += 1
            if self._issued_since_prune < self.settings.prune_every:
                return
            self._issued_since_prune = 0
            s = self.settings
            self.pending = {k: p for k, p in self.pending.items() if now - p.created_at <= s.pending_lifetime}
            self.codes = {k: c for k, c in self.codes.items() if now - c.issued_at <= DAY}
            self.refresh_tokens = {
                k: t for k, t in self.refresh_tokens.items() if not (t.superseded and now - t.issued_at > DAY)
            }


_attach_lock = threading.Lock()


def identity_state(sim: Simulator, key: SigningKey | None = None) -> IdentityState:
    """The simulator's identity state, attached on first use (so the control API and the seed can work on a
    Simulator before any server exists)."""
    with _attach_lock:
        if sim.identity is None:
            sim.identity = IdentityState(key or SigningKey.generate())
    state = sim.identity
    if not isinstance(state, IdentityState):
        raise TypeError(f"sim.identity holds {type(state).__name__}, not IdentityState")
    return state
