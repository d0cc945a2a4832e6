"""A Microsoft directory in the simulator and a system configured with it, for tests of the app's features."""

import pytest

from tests.helpers import configure, make_directory, new_system


@pytest.fixture
def directory(app, simulator):
    return make_directory(simulator, app.redirect_uri)


@pytest.fixture
def system(api, directory):
    system = new_system()
    configure(api, system, directory)
    return system
