"""The template gives the app every setting it reads and creates every table and queue it uses.

Today the code may use no table or queue yet; these tests bite as features land (test_inventory.py shows the
collectors find them). Exclusions are explicit, each with its reason.
"""

import json
import re

import pytest

from tests.infra import inventory
from tests.infra.template import app_settings, declared_queues, declared_tables, load_template

# Settings the code (or local.settings.example.json) knows that the template must NOT set, and why.
NOT_SET_IN_AZURE = {
    "AzureWebJobsStorage": "a connection string, which carries an account key; in Azure the identity-based "
                           "AzureWebJobsStorage__accountName and __credential replace it (and a value here, even "
                           "empty, could shadow them)",
    "WEBSITE_HOSTNAME": "set by the App Service platform on every app",
    "OUTBOUND_CA_BUNDLE": "local stack only (its private CA); Azure uses the default trust store",
    "LOCAL_FUNCTION_KEY": "local stack only; Azure manages function keys",
    "LOCAL_MASTER_KEY": "local stack only; Azure manages the master key",
    "WEBHOOK_ALLOW_LOOPBACK": "local stack only (webhooks to a receiver on the laptop); the app refuses it in Azure",
    "WEBSITE_INSTANCE_ID": "set by the App Service platform on every instance",
    "FUNCTIONS_WORKER_RUNTIME": "Flex Consumption takes the language from functionAppConfig.runtime, not from an "
                                "app setting",
}

TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
QUEUE_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def settings(template):
    return app_settings(template)


@pytest.fixture(scope="module")
def code_settings():
    return inventory.settings_read_by_code() | inventory.settings_documented()


def test_every_setting_the_code_reads_is_set_by_the_template(settings, code_settings):
    assert len(inventory.settings_read_by_code()) >= 10  # the reader found the get() calls
    assert inventory.missing_settings(code_settings, settings, NOT_SET_IN_AZURE) == []


def test_every_binding_expression_resolves_through_the_template(settings):
    """A %SETTING% in a trigger (e.g. the token sweep's schedule) must be an app setting, or the host cannot index."""
    import function_app

    references = inventory.binding_setting_references(function_app.app)
    missing = {name: function for name, function in references.items() if name not in settings}
    assert not missing, f"binding expressions without an app setting in the template: {missing}"


def test_exclusions_are_real_and_not_set(settings, code_settings):
    assert all(len(reason) > 20 for reason in NOT_SET_IN_AZURE.values())
    stale = set(NOT_SET_IN_AZURE) - code_settings
    assert not stale, f"excluded but no longer read or documented: {sorted(stale)}"
    wrongly_set = set(NOT_SET_IN_AZURE) & set(settings)
    assert not wrongly_set, f"the template sets excluded settings: {sorted(wrongly_set)}"


def test_storage_is_reached_with_the_managed_identity(settings):
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "storage" in json.dumps(settings["AzureWebJobsStorage__accountName"])
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"


def test_no_setting_holds_a_secret_in_clear(template, settings):
    secure_params = {name for name, p in template.main.parsed.get("parameters", {}).items()
                     if any(d.get("type") == "secure" for d in p.get("decorators", []))}
    for name, value in settings.items():
        text = json.dumps(value)
        for marker in ("listKeys", "list_keys", "AccountKey=", "SharedAccessSignature", "sig=", "InstrumentationKey=",
                       "ClientSecret", "password"):
            assert marker.lower() not in text.lower(), f"{name} looks like it holds a secret: {text}"
        assert not any(f'"{p}"' in text for p in secure_params), f"{name} takes a @secure() parameter"


def test_key_vault_url_and_public_base_url_come_from_the_resources(template, settings):
    assert "keyVault" in json.dumps(settings["KEY_VAULT_URL"])
    vault_outputs = template.modules["keyVault"].parsed["outputs"]
    assert "vaultUri" in json.dumps(vault_outputs["uri"]["value"])
    assert settings["PUBLIC_BASE_URL"] == "effectiveBaseUrl" or "defaultHostName" in json.dumps(
        template.main.parsed["variables"])
    assert template.main.parsed["parameters"]["publicBaseUrl"]["default"] == ""
    assert "defaultHostName" in json.dumps(template.main.parsed["variables"]["defaultBaseUrl"])


def test_every_table_the_code_uses_is_declared(template):
    used = inventory.tables_used()
    declared = declared_tables(template)
    assert inventory.missing_tables(used, declared) == []
    unused = declared - set(used)
    assert not unused, f"declared in the template but used by no repository: {sorted(unused)}"


def test_every_queue_the_code_uses_is_declared_with_its_poison_queue(template, settings):
    import function_app

    used = inventory.queues_used(function_app.app, settings)
    declared = declared_queues(template)
    assert inventory.missing_queues(used, declared) == []
    expected = set(used) | {f"{q}-poison" for q in used}
    unused = declared - expected
    assert not unused, f"declared in the template but used by no code: {sorted(unused)}"


def test_queue_connections_are_identity_based(settings):
    import function_app

    for binding in inventory.queue_bindings(function_app.app):
        if binding.connection in ("", inventory.HOST_STORAGE):
            continue
        assert {f"{binding.connection}__accountName", f"{binding.connection}__queueServiceUri"} & set(settings), (
            f"{binding.function}: connection {binding.connection} has no identity-based setting in the template")


def test_declared_names_are_valid_azure_names(template):
    for table in declared_tables(template):
        assert TABLE_NAME.fullmatch(table), f"invalid table name {table!r}"
    for queue in declared_queues(template):
        assert QUEUE_NAME.fullmatch(queue), f"invalid queue name {queue!r} (lowercase, digits, single hyphens, 3-63)"
