"""Per-system API keys over HTTP (plain `requests`, not the provisioning ApiClient): the operator creates a system
and gets its key once, keys rotate (two at once) and are revoked, a key of system A gets 403 on every route of
system B, and changing where an integration's tokens and data go needs the client secret again."""

from __future__ import annotations

import re
import uuid

import azure.functions as func
import pytest
import requests
from azure.data.tables import TableServiceClient

from shared.system_keys import digest
from simulator.directory import AUDIENCE_ORG_AND_PERSONAL
from tests.conftest import FUNCTION_KEY, MASTER_KEY
from tests.helpers import integration_body, new_system

_TOKEN = re.compile(r"\{([^{}:?=]+)[^{}]*\}")
SAMPLE = {"kind": "user", "id": "u1", "item": "i1", "location": "main", "job": "j1"}


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def create(app, system: str) -> dict:
    response = session().post(f"{app.url}/api/systems/{system}", headers={"x-functions-key": MASTER_KEY}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def call(app, method: str, path: str, system_key: str | None, **kwargs) -> requests.Response:
    headers = {"x-functions-key": FUNCTION_KEY, **kwargs.pop("headers", {})}
    if system_key is not None:
        headers["x-system-key"] = system_key
    return session().request(method, f"{app.url}{path}", headers=headers, timeout=30, allow_redirects=False,
                             **kwargs)


def system_routes() -> list[tuple[str, str]]:
    """(METHOD, route template) of every function-level HTTP route under systems/{system}, as registered."""
    import function_app

    function_app.app.functions_bindings = None
    try:
        functions = function_app.app.get_functions()
    finally:
        function_app.app.functions_bindings = None
    routes = []
    for function in functions:
        trigger = function.get_trigger()
        if trigger.get_binding_name() != "httpTrigger" or not (trigger.route or "").startswith("systems/{system}"):
            continue
        if trigger.auth_level == func.AuthLevel.ADMIN:
            continue  # the operator's routes: master key, no system key
        for method in trigger.methods:
            routes.append((str(getattr(method, "value", method)).upper(), trigger.route))
    return routes


def fill(template: str, system: str) -> str:
    return "/api/" + _TOKEN.sub(lambda m: system if m.group(1) == "system" else SAMPLE[m.group(1)], template)


def test_the_operator_creates_a_system_and_gets_its_key_once(app, storage_connection_string):
    system = new_system()
    created = create(app, system)
    key, key_id = created["key"], created["key_id"]
    assert re.fullmatch(rf"sk_{key_id}_[A-Za-z0-9_-]{{43}}", key), key
    assert created["header"] == "x-system-key"

    again = session().post(f"{app.url}/api/systems/{system}", headers={"x-functions-key": MASTER_KEY}, timeout=30)
    assert again.status_code == 409 and again.json()["error"]["code"] == "system_exists"
    as_host = session().post(f"{app.url}/api/systems/{new_system()}", headers={"x-functions-key": FUNCTION_KEY},
                             timeout=30)
    assert as_host.status_code == 401  # the function key cannot create systems
    listed = session().get(f"{app.url}/api/systems/{system}/keys", headers={"x-functions-key": MASTER_KEY},
                           timeout=30)
    assert listed.status_code == 200
    assert [k["key_id"] for k in listed.json()["keys"]] == [key_id]
    assert key not in listed.text

    # Stored as its SHA-256 only.
    tables = TableServiceClient.from_connection_string(storage_connection_string)
    row = tables.get_table_client(f"{app.env['TABLE_PREFIX']}systemkeys").get_entity(system, "system")
    assert digest(key) in row["keys"] and key not in str(dict(row))

    assert call(app, "GET", f"/api/systems/{system}/integration", key).status_code == 200


def test_no_system_key_is_401_and_a_wrong_one_403(app):
    system = new_system()
    key = create(app, system)["key"]
    path = f"/api/systems/{system}/integration"
    missing = call(app, "GET", path, None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "system_key_required"
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "sk_nope_x", "not-a-key", "x" * 5000):
        response = call(app, "GET", path, wrong)
        assert response.status_code == 403, (wrong[:20], response.text)
        assert response.json()["error"]["code"] == "system_key_invalid"
    assert call(app, "GET", path, key).status_code == 200
    # Without the function key the host refuses first, whatever the system key.
    assert session().get(f"{app.url}{path}", headers={"x-system-key": key}, timeout=30).status_code == 401


def test_a_key_of_system_a_gets_403_on_every_route_of_system_b(app):
    a, b = new_system(), new_system()
    key_a, key_b = create(app, a)["key"], create(app, b)["key"]
    routes = system_routes()
    assert len(routes) >= 18, routes
    bodies_read = 0
    for method, template in routes:
        path = fill(template, b)
        # A body that is not JSON: the key is checked before the body is read.
        body = {"data": b"not json", "headers": {"content-type": "application/json"}} \
            if method in ("PUT", "POST", "PATCH") else {}
        refused = call(app, method, path, key_a, **body)
        assert refused.status_code == 403, (method, template, refused.text)
        assert refused.json()["error"]["code"] == "system_key_invalid", (method, template)
        assert call(app, method, path, None, **body).status_code == 401, (method, template)
        own = call(app, method, path, key_b, **body)
        assert own.status_code not in (401, 403), (method, template, own.text)
        if body and own.status_code == 400:
            assert own.json()["error"]["code"] == "invalid_json", (method, template)
            bodies_read += 1
    assert bodies_read >= 6  # routes that read a body refused B's own key's bad body, but not A's key's


def test_keys_rotate_two_at_once_and_revocation_takes_effect(app):
    system = new_system()
    admin = {"x-functions-key": MASTER_KEY}
    first = create(app, system)
    path = f"/api/systems/{system}/integration"
    second = session().post(f"{app.url}/api/systems/{system}/keys", headers=admin, timeout=30)
    assert second.status_code == 201, second.text
    second = second.json()
    assert second["key_id"] != first["key_id"]
    assert call(app, "GET", path, first["key"]).status_code == 200
    assert call(app, "GET", path, second["key"]).status_code == 200

    third = session().post(f"{app.url}/api/systems/{system}/keys", headers=admin, timeout=30)
    assert third.status_code == 409 and third.json()["error"]["code"] == "too_many_system_keys"

    revoked = session().delete(f"{app.url}/api/systems/{system}/keys/{first['key_id']}", headers=admin, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["active_keys"] == 1
    assert call(app, "GET", path, first["key"]).status_code == 403
    assert call(app, "GET", path, second["key"]).status_code == 200
    again = session().delete(f"{app.url}/api/systems/{system}/keys/{first['key_id']}", headers=admin, timeout=30)
    assert again.status_code == 404 and again.json()["error"]["code"] == "system_key_not_found"
    listed = session().get(f"{app.url}/api/systems/{system}/keys", headers=admin, timeout=30).json()
    assert [k["key_id"] for k in listed["keys"]] == [second["key_id"]]
    unknown = session().post(f"{app.url}/api/systems/{new_system()}/keys", headers=admin, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "system_not_found"


def test_an_integration_cannot_be_saved_for_a_system_never_created(app, directory):
    other = new_system()
    key = create(app, other)["key"]
    response = call(app, "PUT", f"/api/systems/{new_system()}/integration", key, json=integration_body(directory))
    assert response.status_code == 403 and response.json()["error"]["code"] == "system_key_invalid"
    assert "POST /api/systems/" in response.json()["error"]["message"]


@pytest.mark.parametrize("change", [
    {"allowed_return_origins": ["https://elsewhere.example.org"]},
    {"webhook_url": "http://127.0.0.1:9/hooks", "webhook_secret": "w" * 40},  # loopback: allowed in tests
    "client_id",
])
def test_changing_where_tokens_and_data_go_needs_the_client_secret_again(app, api, simulator, directory, change):
    system = new_system()
    assert api.put(f"/api/systems/{system}/integration", json=integration_body(directory)).status_code == 201
    if change == "client_id":
        other = simulator.control.create_app(directory.tenant_id, "Other", sign_in_audience=AUDIENCE_ORG_AND_PERSONAL,
                                             redirect_uris=[app.redirect_uri],
                                             secrets=[{"expires_in_days": 30}])
        change, secret = {"client_id": other["client_id"]}, other["secrets"][0]["value"]
    else:
        secret = directory.secret
    without = {k: v for k, v in integration_body(directory, **change).items() if k != "client_secret"}
    refused = api.put(f"/api/systems/{system}/integration", json=without)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "client_secret_required" and error["details"]["field"] == "client_secret"
    assert error["details"]["changed"] == [next(iter(change))]
    assert api.get(f"/api/systems/{system}/integration").json()["client_id"] == directory.client_id  # unchanged

    wrong = api.put(f"/api/systems/{system}/integration",
                    json={**without, "client_secret": "not-it-" + uuid.uuid4().hex})
    assert wrong.status_code == 422  # the secret sent is checked with Microsoft
    accepted = api.put(f"/api/systems/{system}/integration", json={**without, "client_secret": secret})
    assert accepted.status_code == 200, accepted.text
    # Other settings change without it.
    same = {k: v for k, v in integration_body(directory, **change, enabled=False).items() if k != "client_secret"}
    assert api.put(f"/api/systems/{system}/integration", json=same).status_code == 200
