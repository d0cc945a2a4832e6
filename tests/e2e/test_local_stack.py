"""The run command's stack, end to end over real sockets: the app on its port with Azurite, the Key Vault
endpoint and the Microsoft simulator beside it."""

import os
import time

import pytest
import requests

from devstack.ports import free_port
from devstack.stack import LocalStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    saved = dict(os.environ)
    ports = {name: free_port() for name in ("app", "azurite_queue", "azurite_table", "keyvault",
                                            "managed_identity", "simulator")}
    settings_file = tmp_path_factory.mktemp("settings") / "local.settings.json"
    settings_file.write_text('{"IsEncrypted": false, "Values": {"LOCAL_FUNCTION_KEY": "e2e-function-key"}}')
    started = time.monotonic()
    running = LocalStack(ports=ports, state_dir=tmp_path_factory.mktemp("devstack"), settings_file=settings_file)
    running.start()
    running.startup_seconds = time.monotonic() - started
    yield running
    running.stop()
    os.environ.clear()
    os.environ.update(saved)


def get(stack, path, **kwargs):
    session = requests.Session()
    session.trust_env = False
    return session.get(f"{stack.app_url}{path}", timeout=10, **kwargs)


def test_health_is_200_with_every_dependency_checked(stack):
    response = get(stack, "/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["storage"]["ok"] is True
    assert body["checks"]["key_vault"]["ok"] is True
    print(f"stack started in {stack.startup_seconds:.1f}s")


def test_keys_come_from_local_settings_and_the_simulator_serves_discovery(stack):
    assert stack.function_key == "e2e-function-key"
    assert stack.master_key and stack.master_key != stack.function_key
    session = requests.Session()
    session.trust_env = False
    discovery = session.get(f"{stack.simulator_url}/common/v2.0/.well-known/openid-configuration",
                            verify=str(stack.tls.ca_path), timeout=10)
    assert discovery.status_code == 200
    assert discovery.json()["token_endpoint"].startswith(stack.simulator_url)


def test_app_settings_point_at_the_local_services(stack):
    assert os.environ["IDENTITY_AUTHORITY_HOST"] == stack.simulator_url
    assert os.environ["GRAPH_BASE_URL"] == f"{stack.simulator_url}/v1.0"
    assert os.environ["KEY_VAULT_URL"] == stack.vault.url
    assert "IDENTITY_ENDPOINT" in os.environ and "IDENTITY_HEADER" in os.environ


def test_the_demo_system_is_created_and_its_key_printed_next_to_the_function_key(stack):
    banner = stack.banner().splitlines()
    function_line = next(i for i, line in enumerate(banner) if "Function key" in line)
    assert stack.system_key.startswith("sk_") and stack.system_key in banner[function_line + 1]
    keyed = {"x-functions-key": stack.function_key, "x-system-key": stack.system_key}
    response = get(stack, "/api/systems/demo/integration", headers=keyed)
    assert response.status_code == 200 and response.json()["client_id"] == stack.demo["client_id"]
    missing = get(stack, "/api/systems/demo/integration", headers={"x-functions-key": stack.function_key})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "system_key_required"


def test_the_demo_rooms_are_listed_and_connect_in_app_mode_without_a_sign_in(stack):
    """The README's quick start: the demo integration has app access, the demo rooms are in its Exchange scope."""
    keyed = {"x-functions-key": stack.function_key, "x-system-key": stack.system_key}
    rooms = get(stack, "/api/systems/demo/rooms", headers=keyed)
    assert rooms.status_code == 200, rooms.text
    hall = "community-hall@springfield-library.test"
    assert hall in [r["address"] for r in rooms.json()["rooms"]]
    session = requests.Session()
    session.trust_env = False
    put = session.put(f"{stack.app_url}/api/systems/demo/connections/space/hall", headers=keyed, timeout=10,
                      json={"mode": "app", "sync_resource": hall, "two_way": True})
    assert put.status_code in (200, 201), put.text
    assert (put.json()["mode"], put.json()["status"]) == ("app", "connected")


def test_the_banner_prints_the_admin_console_which_the_run_command_turns_on(stack):
    line = next(line for line in stack.banner().splitlines() if "Admin console" in line)
    assert f"{stack.app_url}/api/console " in line
    page = get(stack, "/api/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert get(stack, "/api/console/app.js").status_code == 200


def test_unknown_route_is_a_json_404(stack):
    response = get(stack, "/api/definitely/not/here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_app_is_also_served_over_https_for_graphs_change_notifications(stack):
    assert os.environ["NOTIFICATION_BASE_URL"] == stack.notification_base_url
    assert stack.notification_base_url.startswith("https://") and stack.notification_base_url in stack.banner()
    session = requests.Session()
    session.trust_env = False
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    answer = session.post(f"{stack.notification_base_url}/api/notifications/changes", params={"validationToken": token},
                          verify=str(stack.tls.ca_path), timeout=10)
    assert answer.status_code == 200 and answer.text == token


def test_key_vault_outage_makes_health_503_naming_key_vault(stack):
    stack.vault.available = False
    try:
        response = get(stack, "/api/health")
    finally:
        stack.vault.available = True
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["key_vault"]["ok"] is False
    assert body["checks"]["storage"]["ok"] is True
    assert "key_vault" in body["error"]["message"]


def test_killing_azurite_makes_health_503_naming_storage(stack):
    """Last in this module: it takes table storage away for good."""
    stack.azurite.stop_service("table")
    response = get(stack, "/api/health")  # its 10 s timeout also proves no long SDK retry loop hides behind it
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["storage"]["ok"] is False
    assert body["error"] == {"code": "dependency_unavailable", "message": "unavailable: storage"}

