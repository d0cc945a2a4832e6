import pytest

from shared.errors import ConfigurationError
from shared.settings import PUBLIC_CLOUD_AUTHORITY, PUBLIC_CLOUD_GRAPH, Settings


def test_defaults_point_at_microsofts_public_cloud():
    settings = Settings.from_env({})
    assert settings.authority_host == PUBLIC_CLOUD_AUTHORITY
    assert settings.graph_base_url == PUBLIC_CLOUD_GRAPH
    assert settings.tls_verify is True


def test_environment_is_read_and_explicit_values_win():
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "KEY_VAULT_URL": "https://kv.vault.azure.net/",
        "IDENTITY_AUTHORITY_HOST": "https://login.microsoftonline.us",
        "GRAPH_BASE_URL": "https://graph.microsoft.us/v1.0",
        "OUTBOUND_CA_BUNDLE": "/tmp/ca.pem",
    }
    settings = Settings.from_env(env, graph_base_url="https://127.0.0.1:9443/v1.0")
    assert settings.storage_connection_string == "UseDevelopmentStorage=true"
    assert settings.key_vault_url == "https://kv.vault.azure.net/"
    assert settings.authority_host == "https://login.microsoftonline.us"
    assert settings.graph_base_url == "https://127.0.0.1:9443/v1.0"
    assert settings.tls_verify == "/tmp/ca.pem"


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.graph_base_url = "x"  # type: ignore[misc]


def test_unknown_explicit_setting_is_refused():
    with pytest.raises(TypeError, match="unknown settings"):
        Settings.from_env({}, graph_url="x")


def test_http_authority_is_refused_because_msal_would_refuse_it():
    with pytest.raises(ConfigurationError, match="authority_host must use https"):
        Settings.from_env({"IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9443"})


def test_relative_url_is_refused_naming_the_setting():
    with pytest.raises(ConfigurationError, match="graph_base_url"):
        Settings.from_env({"GRAPH_BASE_URL": "graph.microsoft.com"})


def test_redirect_uri_from_public_base_url_or_website_hostname():
    assert Settings.from_env({"PUBLIC_BASE_URL": "http://localhost:7071/"}).redirect_uri == (
        "http://localhost:7071/api/oauth/callback"
    )
    assert Settings.from_env({"WEBSITE_HOSTNAME": "sync.azurewebsites.net"}).redirect_uri == (
        "https://sync.azurewebsites.net/api/oauth/callback"
    )
    with pytest.raises(ConfigurationError):
        _ = Settings.from_env({}).redirect_uri


def test_table_prefix_must_be_a_valid_table_name_start():
    assert Settings.from_env({"TABLE_PREFIX": "ci42"}).table_prefix == "ci42"
    with pytest.raises(ConfigurationError, match="table_prefix"):
        Settings.from_env({"TABLE_PREFIX": "4-bad"})


def test_webhook_loopback_is_off_by_default_and_refused_in_azure():
    assert Settings.from_env({}).webhook_allow_loopback is False
    assert Settings.from_env({"WEBHOOK_ALLOW_LOOPBACK": "true"}).webhook_allow_loopback is True
    with pytest.raises(ConfigurationError, match="WEBHOOK_ALLOW_LOOPBACK"):
        Settings.from_env({"WEBHOOK_ALLOW_LOOPBACK": "yes please"})
    with pytest.raises(ConfigurationError, match="local stack only"):  # App Service sets WEBSITE_INSTANCE_ID
        Settings.from_env({"WEBHOOK_ALLOW_LOOPBACK": "true", "WEBSITE_INSTANCE_ID": "a1b2c3"})
    assert Settings.from_env({"WEBSITE_INSTANCE_ID": "a1b2c3"}).webhook_allow_loopback is False


def test_system_keys_are_required_unless_turned_off():
    assert Settings.from_env({}).system_keys_required is True
    for text, expected in (("false", False), ("False", False), ("0", False), ("TRUE", True), ("1", True)):
        assert Settings.from_env({"SYSTEM_KEYS_REQUIRED": text}).system_keys_required is expected, text
    with pytest.raises(ConfigurationError, match="SYSTEM_KEYS_REQUIRED"):
        Settings.from_env({"SYSTEM_KEYS_REQUIRED": "off"})


def test_notification_urls_follow_their_https_base_and_http_is_refused():
    settings = Settings.from_env({"NOTIFICATION_BASE_URL": "https://sync.example.edu/"})
    assert settings.notification_url == "https://sync.example.edu/api/notifications/changes"
    assert settings.lifecycle_notification_url == "https://sync.example.edu/api/notifications/lifecycle"
    assert Settings.from_env({"WEBSITE_HOSTNAME": "sync.azurewebsites.net"}).notification_url == (
        "https://sync.azurewebsites.net/api/notifications/changes")
    assert Settings.from_env({}).notification_url == ""  # off: rooms are pulled on PULL_SCHEDULE only
    for bad in ("http://sync.example.edu", "https://sync.example.edu/?x=1", "sync.example.edu"):
        with pytest.raises(ConfigurationError, match="notification_base_url"):
            Settings.from_env({"NOTIFICATION_BASE_URL": bad})
    with pytest.raises(ConfigurationError, match="push_sweep_minutes"):
        Settings.from_env({"PUSH_SWEEP_MINUTES": "1"})
