"""One HTTPS simulator per test session; every test gets it with a fresh Simulator (empty directory, clock at
real time, zero counters), so tests are isolated without paying for a server each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msal
import pytest

from simulator.control import Control
from simulator.directory import (
    AUDIENCE_MULTI_ORG,
    AUDIENCE_MY_ORG,
    AUDIENCE_ORG_AND_PERSONAL,
    AUDIENCE_PERSONAL,
    CONSUMERS_TENANT_ID,
)
from simulator.testing import RunningSimulator, confidential_client

REDIRECT_URI = "https://app.test/oauth/callback"
GRAPH_SCOPES = ["User.Read", "Calendars.ReadWrite"]


# `simulator_server` (one HTTPS server per session) and `simulator` (reset per test) live in tests/conftest.py.


@pytest.fixture
def control(simulator: RunningSimulator) -> Control:
    return simulator.control


MsalFactory = Callable[..., msal.ConfidentialClientApplication]


@pytest.fixture
def make_msal(simulator: RunningSimulator) -> MsalFactory:
    """`make_msal(client_id, secret, tenant="common")`: MSAL's real client against the simulator."""

    def build(client_id: str, secret: str, tenant: str = "common", **kwargs: Any) -> msal.ConfidentialClientApplication:
        return confidential_client(simulator, client_id, secret, tenant, **kwargs)

    return build


@dataclass
class App:
    client_id: str
    secret: str


@dataclass
class World:
    """A small directory most identity tests need: two organisations, one personal account, and one app per
    supported-account type, all registered with REDIRECT_URI."""

    contoso: str  # tenant IDs
    fabrikam: str
    alice: str  # addresses
    bob: str
    carol: str
    pat: str
    common_app: App
    org_app: App
    single_app: App
    personal_app: App
    ids: dict[str, str]  # address -> object ID


@pytest.fixture
def world(control: Control) -> World:
    contoso = control.create_tenant("Contoso", "contoso.test")["id"]
    fabrikam = control.create_tenant("Fabrikam", "fabrikam.test")["id"]
    ids = {
        "alice@contoso.test": control.create_user(contoso, "alice@contoso.test", "Alice Anders")["id"],
        "bob@contoso.test": control.create_user(contoso, "bob@contoso.test", "Bob Berg")["id"],
        "carol@fabrikam.test": control.create_user(fabrikam, "carol@fabrikam.test", "Carol Chen")["id"],
        "pat@outlook.test": control.create_user(CONSUMERS_TENANT_ID, "pat@outlook.test", "Pat Personal")["id"],
    }

    def app(name: str, audience: str) -> App:
        made = control.create_app(contoso, name, sign_in_audience=audience, redirect_uris=[REDIRECT_URI],
                                  application_permissions=["Calendars.ReadWrite"])
        return App(made["client_id"], made["secrets"][0]["value"])

    return World(
        contoso, fabrikam, "alice@contoso.test", "bob@contoso.test", "carol@fabrikam.test", "pat@outlook.test",
        common_app=app("Bookings (common)", AUDIENCE_ORG_AND_PERSONAL),
        org_app=app("Bookings (organizations)", AUDIENCE_MULTI_ORG),
        single_app=app("Bookings (Contoso only)", AUDIENCE_MY_ORG),
        personal_app=app("Bookings (personal)", AUDIENCE_PERSONAL),
        ids=ids,
    )
