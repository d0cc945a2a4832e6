"""`SYSTEM_KEYS_REQUIRED=false`: a deployment with one trusted multi-tenant host app, where the function key alone
reaches every system (the app runs in a process of its own, with that setting, as a second deployment would)."""

from __future__ import annotations

import requests

from devstack.ports import free_port
from tests.conftest import FUNCTION_KEY
from tests.e2e.processes import AppProcess, app_env, isolated_storage
from tests.helpers import integration_body, make_directory, new_system


def test_with_system_keys_off_the_function_key_alone_suffices(app, simulator, tmp_path):
    with isolated_storage() as storage:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = AppProcess(app_env(app.env, storage, url, SYSTEM_KEYS_REQUIRED="false"), port,
                             tmp_path / "app.log")
        process.start()
        try:
            session = requests.Session()
            session.trust_env = False
            headers = {"x-functions-key": FUNCTION_KEY}  # and no x-system-key, for a system nobody created
            d = make_directory(simulator, f"{url}/api/oauth/callback")
            system = new_system()
            path = f"{url}/api/systems/{system}/integration"
            saved = session.put(path, json=integration_body(d), headers=headers, timeout=30)
            assert saved.status_code == 201, (saved.text, process.errors())
            assert session.get(path, headers=headers, timeout=30).json()["configured"] is True
            assert session.get(f"{url}/api/systems/{system}/alerts", headers=headers, timeout=30).status_code == 200
            # The client secret is still needed to change where tokens and data go, in this mode too.
            moved = {k: v for k, v in integration_body(d, allowed_return_origins=["https://other.example.org"])
                     .items() if k != "client_secret"}
            refused = session.put(path, json=moved, headers=headers, timeout=30)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "client_secret_required"
            # The function key is still the gate.
            assert session.get(path, timeout=30).status_code == 401
        finally:
            process.stop()
