"""The process's services, built once from settings on first use and shared by every invocation.

Azure Functions keeps a worker process warm between invocations; SDK clients hold connection pools and token
caches, so building them per request would waste both. Nothing is built at import: `function_app.py` stays cheap
to load (cold start), and heavy SDK modules load when first needed.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.settings import Settings

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

    from shared.crypto import Cipher
    from shared.health import HealthService
    from shared.secrets import SecretStore
    from shared.storage.queues import QueueSender


@dataclass
class Services:
    settings: Settings
    tables: TableServiceClient
    queues: QueueSender
    secrets: SecretStore
    cipher: Cipher
    health: HealthService


def build_services(settings: Settings) -> Services:
    from shared.crypto import Cipher, DataKeyring
    from shared.health import HealthService, storage_check
    from shared.secrets import SecretStore
    from shared.storage.queues import QueueSender
    from shared.storage.tables import table_service

    tables = table_service(settings)
    secrets = SecretStore.from_settings(settings)
    return Services(
        settings=settings,
        tables=tables,
        queues=QueueSender.from_settings(settings),
        secrets=secrets,
        cipher=Cipher(DataKeyring(secrets, settings.data_key_secret_name)),
        health=HealthService({"storage": storage_check(tables), "key_vault": secrets.ping}),
    )


_lock = threading.Lock()


@functools.cache
def _cached() -> Services:
    return build_services(Settings.from_env())


def services() -> Services:
    """The shared services of this process (thread-safe first build)."""
    with _lock:
        return _cached()


def reset() -> None:
    """Forget the built services (the local host calls this when it reloads settings)."""
    with _lock:
        _cached.cache_clear()
