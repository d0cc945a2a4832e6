"""The secret store: client secrets, the token-cache data key, the transactionId key and webhook signing
secrets, in Azure Key Vault.

A narrow interface over `azure-keyvault-secrets` so the rest of the app never sees SDK types or exceptions. The
credential is `DefaultAzureCredential`: the Function App's managed identity in Azure, and locally the stand-in
managed-identity endpoint the local stack serves (same protocol), so there is one code path.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from shared.errors import ConfigurationError, DependencyUnavailable, SecretNotFound

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

_SAFE_PART = re.compile(r"[A-Za-z0-9]{1,40}")
TXN_KEY_SECRET_NAME = "transaction-id-key"  # noqa: S105  # nosec B105 - a name, not a secret
TXN_KEY_BYTES = 32
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class SecretValue:
    value: str
    version: str

    def __repr__(self) -> str:  # keep values out of logs and tracebacks
        return f"SecretValue(version={self.version!r}, value=<redacted>)"


def secret_name(kind: str, *ids: str) -> str:
    """A Key Vault-safe, collision-free name for a secret that belongs to `ids` (e.g. a system ID).

    Key Vault allows only letters, digits and dashes; IDs from callers can hold anything, so they are hashed.
    The readable IDs go into the secret's tags instead.
    """
    if not _SAFE_PART.fullmatch(kind):
        raise ValueError("kind must be 1-40 letters or digits")
    digest = hashlib.sha256("\x1f".join(ids).encode()).hexdigest()[:40]
    return f"{kind}-{digest}"


class SecretStore:
    def __init__(self, client: SecretClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretStore:
        if not settings.key_vault_url:
            raise ConfigurationError("KEY_VAULT_URL is not set")
        host = urlsplit(settings.key_vault_url).hostname or ""
        client = SecretClient(
            settings.key_vault_url,
            DefaultAzureCredential(exclude_interactive_browser_credential=True),
            # The challenge names resource https://vault.azure.net, which only matches real vault hosts.
            verify_challenge_resource=host not in _LOOPBACK,
            connection_verify=settings.tls_verify,
            connection_timeout=5,
            read_timeout=20,
            retry_total=3,
        )
        return cls(client)

    def get(self, name: str, version: str | None = None, **call: Any) -> SecretValue:
        try:
            secret = self._client.get_secret(name, version, **call)
        except ResourceNotFoundError:
            raise SecretNotFound(f"secret {name} not found") from None
        except AzureError as exc:
            raise self._unavailable(exc) from None
        return SecretValue(secret.value or "", secret.properties.version or "")

    def set(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Store a new version and return its version ID."""
        try:
            secret = self._client.set_secret(name, value, expires_on=expires_on, content_type=content_type, tags=tags)
        except AzureError as exc:
            raise self._unavailable(exc) from None
        return secret.properties.version or ""

    def delete(self, name: str) -> bool:
        """Delete (soft, as the vault's policy says); True if it existed. Waiting for completion is not needed:
        a deleted secret can no longer be read."""
        try:
            self._client.begin_delete_secret(name)
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise self._unavailable(exc) from None
        return True

    def ping(self) -> None:
        """Prove the vault answers and our identity is accepted: read a name that need not exist, no retries."""
        try:
            self.get("health-probe", retry_total=0)
        except SecretNotFound:
            return

    @staticmethod
    def _unavailable(exc: Exception) -> DependencyUnavailable:
        # Log the type only: SDK messages can echo request URLs and, for set, nothing else, but be strict.
        log.warning("key vault call failed: %s", type(exc).__name__)
        return DependencyUnavailable("Key Vault is unreachable or refused the request")


class TransactionKey:
    """The HMAC key that makes event `transactionId`s unguessable, so no one who can write to a calendar can
    pre-create an event the product's create would then answer with (or be refused by) and adopt.

    One key per deployment: the attacker is a calendar user without access to the vault, whichever system they
    belong to, so a key per system would add vault reads and no protection. Created in Key Vault on first use, as
    the data key is; read once per process (never at import, never per request) and then kept for the process's
    life, so a create retried in this process always carries the same transactionId. A new version in the vault
    takes effect as processes restart; the transactionId of a create already recorded is kept with its record.
    """

    def __init__(self, store: SecretStore, name: str = TXN_KEY_SECRET_NAME) -> None:
        self._store = store
        self._name = name
        self._lock = threading.Lock()
        self._key: bytes | None = None

    def __call__(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = self._load()
            return self._key

    def _load(self) -> bytes:
        try:
            secret = self._store.get(self._name)
        except SecretNotFound:
            # First use in this deployment. Two instances racing here each write a version; reading the latest
            # again after writing makes them agree unless both wrote before either read.
            self._store.set(self._name, base64.b64encode(os.urandom(TXN_KEY_BYTES)).decode(),
                            content_type="hmac-sha256 key")
            secret = self._store.get(self._name)
        try:
            key = base64.b64decode(secret.value, validate=True)
        except ValueError:
            raise ConfigurationError(f"the Key Vault secret {self._name} is not base64") from None
        if len(key) < TXN_KEY_BYTES:
            raise ConfigurationError(f"the Key Vault secret {self._name} holds fewer than {TXN_KEY_BYTES} bytes")
        return key
