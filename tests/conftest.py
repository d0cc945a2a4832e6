"""Session-wide services for integration tests: real Azurite, the local TLS CA.

Nothing here is a double of the project's own modules: fixtures start the real services the code talks to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.azurite import Azurite
from devstack.ports import free_port
from devstack.tls import LocalTls, create_local_tls


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
