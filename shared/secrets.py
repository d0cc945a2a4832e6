"""The secret store: client secrets, the token-cache data key and webhook signing secrets, in Azure Key Vault.

A narrow interface over `azure-keyvault-secrets` so the rest of the app never sees SDK types or exceptions. The
credential is `DefaultAzureCredential`: the Function App's managed identity in Azure, and locally the stand-in
managed-identity endpoint the local stack serves (same protocol), so there is one code path.
"""

from __future__ import annotations

import hashlib
import logging
import re
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

_SAFE_PART = re.compile(r"^[A-Za-z0-9]{1,40}$")
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
    if not _SAFE_PART.match(kind):
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
