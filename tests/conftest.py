"""Session-wide services for integration tests: real Azurite, the local TLS CA.

Nothing here is a double of the project's own modules: fixtures start the real services the code talks to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import client as devstack_client
from devstack.azurite import Azurite
from devstack.host import LocalFunctionsHost
from devstack.keyvault import KeyVaultEndpoint
from devstack.managed_identity import ManagedIdentityEndpoint, TokenAuthority
from devstack.ports import free_port
from devstack.stack import REPO, load_local_settings
from devstack.tls import LocalTls, create_local_tls
from shared.settings import Settings
from simulator.testing import RunningSimulator, start_simulator


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


# --- the Microsoft simulator ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def simulator_server(local_tls: LocalTls) -> Iterator[RunningSimulator]:
    running = start_simulator(local_tls)
    yield running
    running.stop()


@pytest.fixture
def simulator(simulator_server: RunningSimulator) -> RunningSimulator:
    """The session's simulator with fresh state (empty directory, real-time clock, zero counters)."""
    simulator_server.reset()
    return simulator_server


# --- the function app, served by the local host ---------------------------------------------------------------

FUNCTION_KEY = "test-function-key"
MASTER_KEY = "test-master-key"


@dataclass
class RunningApp:
    url: str
    host: LocalFunctionsHost
    env: dict[str, str]
    https_url: str = ""  # the same app over HTTPS (local CA): where the simulator posts change notifications

    def client(self, key: str | None = FUNCTION_KEY) -> ApiClient:
        return ApiClient(self.url, key)

    @property
    def redirect_uri(self) -> str:
        return f"{self.url}/api/oauth/callback"


class ApiClient(devstack_client.ApiClient):
    """`requests` against the app with the function key, JSON in and out; on `/api/systems/{system}/...` routes
    also that system's `x-system-key`, provisioned with the master key on first use (devstack/client.py), so tests
    need not care about system keys. Tests of the keys themselves use plain `requests`."""

    def __init__(self, base: str, key: str | None, *, master_key: str | None = MASTER_KEY) -> None:
        super().__init__(base, key, master_key=master_key)


@pytest.fixture(scope="session")
def app_server(
    storage_connection_string: str, key_vault: KeyVaultEndpoint, local_tls: LocalTls,
    simulator_server: RunningSimulator,
) -> Iterator[RunningApp]:
    """The real function_app.py behind the local host on a free port, its settings pointing at the session's
    Azurite, Key Vault endpoint and simulator, exactly as the run command wires them."""
    import json as _json

    import function_app
    from shared import runtime

    port, https_port = free_port(), free_port()
    url, https_url = f"http://127.0.0.1:{port}", f"https://127.0.0.1:{https_port}"
    env = {
        **load_local_settings(REPO / "local.settings.example.json"),
        "AzureWebJobsStorage": storage_connection_string,
        "KEY_VAULT_URL": key_vault.url,
        "OUTBOUND_CA_BUNDLE": str(local_tls.ca_path),
        "PUBLIC_BASE_URL": url,
        "IDENTITY_AUTHORITY_HOST": simulator_server.url,
        "GRAPH_BASE_URL": f"{simulator_server.url}/v1.0",
        "TABLE_PREFIX": "app" + uuid.uuid4().hex[:6],
        # Tests run the timers on demand (services or POST /admin/functions/{name}), never on the clock.
        "TOKEN_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        "EXPORT_RETRY_SCHEDULE": "0 0 0 1 1 *",
        "PULL_SCHEDULE": "0 0 0 1 1 *",
        "WEBHOOK_ALLOW_LOOPBACK": "true",  # the tests' webhook receivers listen on 127.0.0.1
        "CONSOLE_ENABLED": "true",  # the browser tests drive the admin console; the fuzz test reaches it too
        "FLOW_PURGE_SCHEDULE": "0 0 0 1 1 *",
        "SUBSCRIPTION_RENEW_SCHEDULE": "0 0 0 1 1 *",
        "NOTIFICATION_BASE_URL": https_url,  # Graph (the simulator) posts change notifications over HTTPS only
    }
    saved = dict(os.environ)
    os.environ.update(env)
    runtime.reset()
    host = LocalFunctionsHost(function_app.app, host_json=_json.loads((REPO / "host.json").read_text()),
                              env=dict(os.environ), function_key=FUNCTION_KEY, master_key=MASTER_KEY,
                              storage_connection_string=storage_connection_string)
    host.start(port=port, https_port=https_port, ssl_context=local_tls.server_context())
    yield RunningApp(url, host, env, https_url)
    host.stop()
    runtime.reset()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def app(app_server: RunningApp, simulator: RunningSimulator) -> RunningApp:
    """The app with a fresh simulator behind it; tests isolate their rows by using their own system IDs."""
    return app_server


@pytest.fixture
def api(app: RunningApp) -> ApiClient:
    return app.client()
