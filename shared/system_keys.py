"""Per-system API keys: which system a caller may act for.

The function key (the Functions host's gate) says a caller may use the API at all; the system key, sent as
`x-system-key`, says which system it may act for, so one host app's key cannot reach another institution's
integration, connections or feed. An operator (master key) creates a system and receives its first key once.

Keys are `sk_<key id>_<secret>`: 32 random bytes (`secrets.token_urlsafe(32)`) behind a short key ID that names
the key's record, so a key can be revoked by ID without anyone handling the key itself. Only SHA-256 of the key is
stored: a 256-bit random key cannot be guessed from its hash, so the slow, salted hashes passwords need would only
cost CPU on every request (the same reasoning as GitHub's and Stripe's API tokens). Comparison is constant-time.
A system holds at most two active keys, so a host can move to a new key before the old one is revoked.

Lookups are cached per instance for `CACHE_SECONDS`: a revocation takes effect at once on the instance that made
it and within that many seconds on every other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared import validation
from shared.clock import Clock, iso, utcnow
from shared.errors import AlreadyExists, ConcurrencyConflict, Conflict, Forbidden, NotFound, Unauthorized
from shared.models import SystemRecord
from shared.storage.repositories import SystemRecords

HEADER = "x-system-key"
PREFIX = "sk"
MAX_ACTIVE_KEYS = 2
CACHE_SECONDS = 5.0
_MAX_KEY_LENGTH = 200  # far above a real key (about 55 characters): longer is refused before hashing


class SystemKeyRequired(Unauthorized):
    code = "system_key_required"


class SystemKeyInvalid(Forbidden):
    code = "system_key_invalid"


class SystemExists(AlreadyExists):
    code = "system_exists"


class SystemNotFound(NotFound):
    code = "system_not_found"


class SystemKeyNotFound(NotFound):
    code = "system_key_not_found"


class TooManySystemKeys(Conflict):
    code = "too_many_system_keys"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh (key ID, key)."""
    key_id = secrets.token_hex(4)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The key ID a presented key names, or None when it is not shaped like one of ours."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


class SystemKeyService:
    def __init__(self, records: SystemRecords, *, required: bool, clock: Clock = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._records = records
        self.required = required
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, SystemRecord | None]] = {}
        self._lock = threading.Lock()

    # --- the check every system route makes --------------------------------------------------------------------

    def verify(self, system: str, presented: str | None) -> None:
        """Pass, or raise 401 (no key) / 403 (not an active key of this system). The system ID's shape is checked
        first, as every route does: no key can belong to an ID that cannot exist."""
        if not self.required:
            return
        validation.identifier(system, "system")
        if not presented:
            raise SystemKeyRequired(f"send this system's key in the {HEADER} header")
        key_id = key_id_of(presented) if len(presented) <= _MAX_KEY_LENGTH else None
        record = self._cached(system) if key_id else None
        entry = next((k for k in record.keys if k.get("key_id") == key_id), None) if record else None
        # Compared even without a matching record, so a miss costs about what a hit does.
        expected = entry["sha256"] if entry else digest("")
        if not (hmac.compare_digest(digest(presented), expected) and entry is not None):
            raise SystemKeyInvalid(f"the {HEADER} header is not an active key of system {system} (an operator "
                                   f"creates the system and its keys: POST /api/systems/{system} with the master key)")

    def _cached(self, system: str) -> SystemRecord | None:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(system)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = self._records.find(system)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[system] = (now + CACHE_SECONDS, record)
        return record

    def _forget(self, system: str) -> None:
        with self._lock:
            self._cache.pop(system, None)

    # --- the operator's routes ---------------------------------------------------------------------------------

    def create_system(self, system: str) -> dict[str, Any]:
        """Create the system with its first key, answered once (only its hash is kept)."""
        validation.identifier(system, "system")
        exists = SystemExists(f"system {system} already exists; add a key with POST /api/systems/{system}/keys")
        if self._records.find(system) is not None:  # refused without a write; the insert below settles a race
            raise exists
        key_id, key = new_key()
        now = self._clock()
        record = SystemRecord(system=system, keys=[self._entry(key_id, key, now)], created_at=now, updated_at=now)
        try:
            self._records.insert(record)
        except AlreadyExists:
            raise exists from None
        self._forget(system)
        return {"system": system, **self._issued(key_id, key, now)}

    def add_key(self, system: str) -> dict[str, Any]:
        """A second active key, for rotation: the host moves to it, then the operator revokes the old one."""
        record = self._require(system)
        if len(record.keys) >= MAX_ACTIVE_KEYS:
            raise TooManySystemKeys(f"system {system} already has {MAX_ACTIVE_KEYS} active keys; revoke one first "
                                    f"(DELETE /api/systems/{system}/keys/{{key_id}})")
        key_id, key = new_key()
        now = self._clock()
        record.keys = [*record.keys, self._entry(key_id, key, now)]
        record.updated_at = now
        self._write(record)
        return {"system": system, **self._issued(key_id, key, now)}

    def revoke(self, system: str, key_id: str) -> dict[str, Any]:
        record = self._require(system)
        kept = [k for k in record.keys if k.get("key_id") != key_id]
        if len(kept) == len(record.keys):
            raise SystemKeyNotFound(f"system {system} has no active key {key_id}")
        record.keys = kept
        record.updated_at = self._clock()
        self._write(record)
        return {"system": system, "key_id": key_id, "revoked": True, "active_keys": len(kept)}

    def list_keys(self, system: str) -> dict[str, Any]:
        record = self._require(system)
        return {"system": system, "created_at": iso(record.created_at),
                "keys": [{"key_id": k["key_id"], "created_at": k["created_at"]} for k in record.keys]}

    def _require(self, system: str) -> SystemRecord:
        validation.identifier(system, "system")
        record = self._records.find(system)
        if record is None:
            raise SystemNotFound(f"system {system} does not exist; create it with POST /api/systems/{system}")
        return record

    def _write(self, record: SystemRecord) -> None:
        """Under the ETag read with it: two concurrent rotations cannot leave three keys."""
        try:
            self._records.update(record)
        except ConcurrencyConflict:
            raise ConcurrencyConflict(f"system {record.system}'s keys changed meanwhile; retry") from None
        finally:
            self._forget(record.system)

    @staticmethod
    def _entry(key_id: str, key: str, now: datetime) -> dict[str, str]:
        return {"key_id": key_id, "sha256": digest(key), "created_at": iso(now) or ""}

    @staticmethod
    def _issued(key_id: str, key: str, now: datetime) -> dict[str, Any]:
        return {"key_id": key_id, "key": key, "created_at": iso(now), "header": HEADER,
                "note": "Shown once: only its hash is stored. Give it to the host app for this system only."}
