"""A Microsoft directory in the simulator and a system configured with it, for tests of the app's features."""

import os

import pytest

from shared.runtime import build_services
from shared.settings import Settings
from tests.helpers import configure, connect, make_directory, new_system


@pytest.fixture
def directory(app, simulator):
    return make_directory(simulator, app.redirect_uri)


@pytest.fixture
def system(api, directory):
    system = new_system()
    configure(api, system, directory)
    return system


@pytest.fixture
def staff(api, simulator, directory, system):
    """A staff member signed in as user connection `u1` of the system."""
    connect(api, simulator, system, "user", "u1", directory.staff)
    return directory.staff


@pytest.fixture
def services(app):
    """The app's services in the test process (same tables, queues, vault and Microsoft as the app process)."""
    return build_services(Settings.from_env(os.environ))


@pytest.fixture
def timed(app, simulator):
    """The app's services on the simulator's clock (same tables, queues, vault and Microsoft), for simulated days."""
    return build_services(Settings.from_env(os.environ), clock=simulator.sim.clock.now)
