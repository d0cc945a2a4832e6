"""Access tokens for connections: delegated ones from their encrypted MSAL token caches, app-only ones from the
process's in-memory client-credentials cache (shared/identity.py; nothing of them is stored).

Refresh tokens rotate: every refresh returns a new one. The cache is written back only when it changed and only
if nobody else wrote it since it was read (ETag), so two instances refreshing at once cannot replace a newer
refresh token with an older one. A refresh refused because another writer already rotated the token is retried
with the newer cache rather than reported as a dead grant.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import msal

from shared import aadsts
from shared.clock import Clock, utcnow
from shared.crypto import Cipher
from shared.errors import AlreadyExists, ConcurrencyConflict, DomainError
from shared.identity import CredentialsInvalid, IdentityPlatform, TokenRefused
from shared.integrations import ClientSecrets
from shared.models import Connection, Integration, RefreshDue, TokenCache
from shared.storage.repositories import RefreshSchedule, TokenCaches

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
MOVED_ON_WAIT = 2.0  # seconds to watch for a concurrent writer's cache before calling a grant dead
HOT_MARGIN = 300.0  # an access token in hand is used until 5 minutes before it expires
# Bounds on what an instance keeps per connection, so its memory does not grow with the number of connections it
# has served: the most recently used access tokens, and refresh locks shared by stripes of connections.
HOT_TOKENS = 1024
LOCK_STRIPES = 64


class ReauthorizationRequired(DomainError):
    """The connection's grant is dead (expired, revoked, consent withdrawn, account disabled)."""

    code = "reauthorization_required"
    status = 409


class ScopeNotGranted(DomainError):
    """A delegated token for extra scopes (e.g. Place.Read.All) was refused for want of consent: the grant is
    fine for sync, so the connection is not marked."""

    code = "scope_not_granted"
    status = 403


class TokenService:
    def __init__(
        self, caches: TokenCaches, schedule: RefreshSchedule, cipher: Cipher, identity: IdentityPlatform,
        secrets: ClientSecrets, *, refresh_idle_days: int, clock: Clock = utcnow,
    ) -> None:
        self._caches = caches
        self._schedule = schedule
        self._cipher = cipher
        self._identity = identity
        self._secrets = secrets
        self._idle = timedelta(days=refresh_idle_days)
        self._clock = clock
        # One refresh at a time per connection within this process (connections share a lock stripe); across
        # processes the ETag decides.
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        # Access tokens in hand (token, valid until, monotonic), least recently used first: a bulk job asks before
        # every batch, and reading, decrypting and consulting the cache each time would cost a table read a batch.
        # Keyed by account, not connection: a delegate signed in for many rooms has one token for all of them.
        self._hot: OrderedDict[tuple[str, ...], tuple[str, float]] = OrderedDict()
        self._hot_guard = threading.Lock()

    # --- the cache ------------------------------------------------------------------------------------------------

    def new_cache(self) -> msal.SerializableTokenCache:
        return msal.SerializableTokenCache()

    def store_new(self, connection: Connection, cache: msal.SerializableTokenCache) -> None:
        """After a sign-in: replace whatever cache the connection had, and schedule its keep-alive refresh."""
        old = self._caches.get(connection.system, connection.row_key())
        row = self._seal(connection, cache)
        self._caches.upsert(row)
        self._schedule_entry(row, replacing=old)

    def erase(self, connection: Connection) -> None:
        account = _account(connection)
        with self._hot_guard:  # the account's other connections read their own caches again
            for key in [k for k in self._hot if k[0] == connection.system and k[2] == account]:
                del self._hot[key]
        old = self._caches.get(connection.system, connection.row_key())
        self._caches.delete(connection.system, connection.row_key())
        if old is not None and old.due_key:
            self._schedule.delete("due", old.due_key)

    def is_current(self, system: str, kind: str, subject_id: str, entry_key: str) -> bool:
        """Whether a schedule entry is the one its connection's cache points at (a crash can leave stale ones)."""
        row = self._caches.get(system, f"{kind}:{subject_id}")
        return row is not None and row.due_key == entry_key

    def _seal(self, connection: Connection, cache: msal.SerializableTokenCache) -> TokenCache:
        now = self._clock()
        row = TokenCache(system=connection.system, kind=connection.kind, subject_id=connection.subject_id,
                         sealed="", written_at=now, due_at=now + self._idle)
        row.sealed = self._cipher.seal(cache.serialize().encode(), row.context())
        row.key_version = Cipher.key_version(row.sealed)
        return row

    def _open(self, row: TokenCache) -> msal.SerializableTokenCache:
        cache = msal.SerializableTokenCache()
        cache.deserialize(self._cipher.open(row.sealed, row.context()).decode())
        return cache

    # --- tokens ---------------------------------------------------------------------------------------------------

    def app_token(self, integration: Integration, *, force_refresh: bool = False) -> str:
        """An app-only access token for the integration's app-access directory (client credentials, `.default`).

        Raises `CredentialsInvalid` when Microsoft refuses the app's credentials (or does not know the app in
        that directory), `TokenRefused` or `DependencyUnavailable` for what may pass.
        """
        result = self._identity.client_token(integration, self._secrets.value(integration),
                                             force_refresh=force_refresh)
        if "access_token" in result:
            return str(result["access_token"])
        code = aadsts.code_of(result)
        error = result.get("error")
        if aadsts.is_credential_problem(code) or error in ("invalid_client", "unauthorized_client"):
            raise CredentialsInvalid(aadsts.describe(code, "Microsoft refused the app's credentials"),
                                     microsoft_code=code)
        raise TokenRefused(aadsts.describe(code, f"Microsoft answered {error}"), microsoft_code=code)

    def access_token(self, integration: Integration, connection: Connection, *, force_refresh: bool = False,
                     scopes: tuple[str, ...] | None = None) -> str:
        """A valid access token for the connection's account, refreshing (and rotating) as needed; `scopes`
        asks for other scopes than the sync scopes (room discovery's Place.Read.All).

        Raises `ReauthorizationRequired` when only a new sign-in can help, `CredentialsInvalid` when the app's
        own credentials were refused, `ScopeNotGranted` when extra scopes lack consent, `TokenRefused` or
        `DependencyUnavailable` for what may pass.
        """
        # One account, one app, one set of scopes: the same access token whichever connection holds the grant, so
        # a delegate's rooms share it (and refresh it once an hour between them, not once a room).
        key = (connection.system, integration.client_id, _account(connection),
               " ".join(scopes or self._identity.scopes(connection.kind)))
        with self._lock_for(connection):
            with self._hot_guard:
                hot = self._hot.pop(key, None)
                if hot is not None and not force_refresh and hot[1] - time.monotonic() > HOT_MARGIN:
                    self._hot[key] = hot  # most recently used now
                    return hot[0]
            token, lifetime = self._acquire(integration, connection, force_refresh, scopes)
            with self._hot_guard:
                self._hot[key] = (token, time.monotonic() + lifetime)
                while len(self._hot) > HOT_TOKENS:
                    self._hot.popitem(last=False)
            return token

    def _acquire(self, integration: Integration, connection: Connection, force_refresh: bool,
                 scopes: tuple[str, ...] | None = None) -> tuple[str, float]:
        secret = self._secrets.value(integration)
        last_error: dict[str, Any] = {}
        for attempt in range(MAX_ATTEMPTS):
            if attempt:  # a newer cache from another writer holds a fresh access token: use it, do not force again
                force_refresh = False
            row = self._caches.get(connection.system, connection.row_key())
            if row is None:
                raise ReauthorizationRequired("the connection has no tokens: authorize it again")
            cache = self._open(row)
            result = self._identity.silent(integration, secret, cache, connection.home_account_id,
                                           connection.kind, force_refresh=force_refresh, scopes=scopes)
            if result is None:
                raise ReauthorizationRequired("the signed-in account is missing from the token cache")
            if "access_token" in result:
                if cache.has_state_changed:
                    self._write_back(connection, row, cache)
                return str(result["access_token"]), float(result.get("expires_in") or 0)
            last_error = result
            if self._cache_moved_on(connection, row):
                continue  # another writer rotated the refresh token meanwhile: use theirs
            break
        code = aadsts.code_of(last_error)
        error = last_error.get("error")
        if aadsts.is_credential_problem(code) or error in ("invalid_client", "unauthorized_client"):
            raise CredentialsInvalid(aadsts.describe(code, "Microsoft refused the app's credentials"),
                                     microsoft_code=code)
        if scopes and (code in aadsts.ADMIN_APPROVAL_CODES or error == "invalid_scope"):
            raise ScopeNotGranted(f"Microsoft has no consent for {' '.join(scopes)} for this app and account",
                                  microsoft_code=code)
        if aadsts.is_reauth_problem(code, error):
            raise ReauthorizationRequired(aadsts.describe(code, "Microsoft refused the refresh token"),
                                          microsoft_code=code)
        raise TokenRefused(aadsts.describe(code, f"Microsoft answered {error}"), microsoft_code=code)

    def _write_back(self, connection: Connection, read: TokenCache, cache: msal.SerializableTokenCache) -> None:
        row = self._seal(connection, cache)
        row.etag = read.etag
        try:
            self._caches.update(row)
        except ConcurrencyConflict:
            # Someone wrote a newer cache (another refresh or a new sign-in); theirs wins, ours is dropped.
            log.info("token cache for %s/%s changed concurrently; keeping the newer one",
                     connection.system, connection.row_key())
            return
        self._schedule_entry(row, replacing=read)

    def _cache_moved_on(self, connection: Connection, read: TokenCache) -> bool:
        """Whether another writer replaced the cache since `read`. A refusal can come from a refresh token that a
        concurrent refresh (another instance) has just rotated while it is still writing the new cache back, so
        the row is watched for a moment before the grant is called dead."""
        deadline = time.monotonic() + MOVED_ON_WAIT
        while True:
            latest = self._caches.get(connection.system, connection.row_key())
            if latest is not None and latest.etag != read.etag:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _lock_for(self, connection: Connection) -> threading.Lock:
        stripe = zlib.crc32(f"{connection.system}|{connection.row_key()}".encode()) % LOCK_STRIPES
        return self._locks[stripe]

    # --- the keep-alive schedule ----------------------------------------------------------------------------------

    def _schedule_entry(self, row: TokenCache, *, replacing: TokenCache | None) -> None:
        """Point the schedule at the cache's new due time: insert the new entry, then drop the old one, so a
        crash in between leaves an extra entry (harmless: the sweep skips stale ones), never none."""
        if row.due_at is None:  # every sealed row gets one; nothing to schedule otherwise
            return
        with contextlib.suppress(AlreadyExists):
            self._schedule.insert(RefreshDue(due_at=row.due_at, system=row.system, kind=row.kind,
                                             subject_id=row.subject_id))
        if replacing is not None and replacing.due_key and replacing.due_key != row.due_key:
            self._schedule.delete("due", replacing.due_key)


def _account(connection: Connection) -> str:
    """The signed-in account a connection's tokens are for; a connection without one (never signed in) is its
    own."""
    return connection.home_account_id or f"connection:{connection.row_key()}"
