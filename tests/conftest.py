"""Session-wide services for integration tests: real Azurite, the local TLS CA.

Nothing here is a double of the project's own modules: fixtures start the real services the code talks to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.azurite import Azurite
from devstack.keyvault import KeyVaultEndpoint
from devstack.managed_identity import ManagedIdentityEndpoint, TokenAuthority
from devstack.ports import free_port
from devstack.tls import LocalTls, create_local_tls
from shared.settings import Settings


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return create_local_tls(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    service = Azurite(free_port(), free_port()).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture(scope="session")
def managed_identity() -> Iterator[ManagedIdentityEndpoint]:
    """The App Service managed-identity endpoint stand-in; its variables are set for the whole session, as the
    Functions host sets them for the worker, so `DefaultAzureCredential` finds it."""
    endpoint = ManagedIdentityEndpoint(TokenAuthority()).start(free_port())
    saved = {k: os.environ.get(k) for k in endpoint.environment()}
    os.environ.update(endpoint.environment())
    yield endpoint
    endpoint.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def key_vault(managed_identity: ManagedIdentityEndpoint, local_tls: LocalTls) -> Iterator[KeyVaultEndpoint]:
    vault = KeyVaultEndpoint(managed_identity.authority, local_tls).start(free_port())
    yield vault
    vault.stop()


@pytest.fixture(scope="session")
def base_settings(storage_connection_string: str, key_vault: KeyVaultEndpoint, local_tls: LocalTls) -> Settings:
    """Settings pointing at the session's real local services (explicit values; the environment is not read)."""
    return Settings.from_env(
        {},
        storage_connection_string=storage_connection_string,
        key_vault_url=key_vault.url,
        outbound_ca_bundle=str(local_tls.ca_path),
        public_base_url="http://localhost:7071",
    )


@pytest.fixture
def table_prefix() -> str:
    """A fresh table-name prefix per test: tests share one Azurite but never each other's rows."""
    return "t" + uuid.uuid4().hex[:10]
