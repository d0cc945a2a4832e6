"""The secret store through the real `azure-keyvault-secrets` SDK and `DefaultAzureCredential`, against the local
Key Vault-compatible endpoint (challenge-based auth, tokens from the managed-identity stand-in)."""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from shared.errors import DependencyUnavailable, SecretNotFound
from shared.secrets import SecretStore, secret_name


@pytest.fixture
def store(base_settings) -> SecretStore:
    return SecretStore.from_settings(base_settings)


def test_set_get_latest_and_by_version(store):
    name = secret_name("test", "system-a")
    v1 = store.set(name, "first", tags={"system": "system-a"})
    v2 = store.set(name, "second")
    assert v1 != v2
    assert store.get(name).value == "second"
    assert store.get(name).version == v2
    assert store.get(name, v1).value == "first"


def test_missing_secret_is_a_domain_error(store):
    with pytest.raises(SecretNotFound):
        store.get(secret_name("test", "never-set"))


def test_delete_then_get_is_not_found_and_second_delete_reports_absence(store):
    name = secret_name("test", "to-delete")
    store.set(name, "x")
    assert store.delete(name) is True
    with pytest.raises(SecretNotFound):
        store.get(name)
    assert store.delete(name) is False


def test_secret_values_are_redacted_in_repr(store):
    name = secret_name("test", "repr")
    store.set(name, "s3cr3t-value")
    assert "s3cr3t-value" not in repr(store.get(name))


def test_secret_names_are_vault_safe_and_distinct():
    a = secret_name("clientsecret", "sys/1 with spaces")
    b = secret_name("clientsecret", "sys", "1 with spaces")
    assert a != b
    assert a.replace("-", "").isalnum() and len(a) <= 127


def test_ping_succeeds_against_a_live_vault(store):
    store.ping()


def test_outage_is_a_domain_error(base_settings, key_vault):
    store = SecretStore.from_settings(base_settings)
    key_vault.available = False
    try:
        with pytest.raises(DependencyUnavailable, match="Key Vault"):
            store.get("anything", retry_total=0)
    finally:
        key_vault.available = True


def test_endpoint_challenges_requests_without_a_token(key_vault, local_tls):
    session = requests.Session()
    session.trust_env = False
    response = session.get(f"{key_vault.url}secrets/x/?api-version=7.5", verify=str(local_tls.ca_path), timeout=5)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer authorization="https://login.microsoftonline.com/')
    assert 'resource="https://vault.azure.net"' in challenge
    forged = session.get(f"{key_vault.url}secrets/x/?api-version=7.5", verify=str(local_tls.ca_path), timeout=5,
                         headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401


def test_sdk_list_versions_expiry_purge_and_recover(key_vault, local_tls, managed_identity):
    client = SecretClient(key_vault.url, DefaultAzureCredential(), verify_challenge_resource=False,
                          connection_verify=str(local_tls.ca_path))
    expires = datetime.now(UTC) + timedelta(days=30)
    client.set_secret("sdk-a", "1", expires_on=expires, content_type="text/plain")
    client.set_secret("sdk-a", "2")
    names = {p.name for p in client.list_properties_of_secrets()}
    assert "sdk-a" in names
    versions = list(client.list_properties_of_secret_versions("sdk-a"))
    assert len(versions) == 2
    first = client.get_secret("sdk-a", versions[0].version)
    assert first.value == "1" and first.properties.content_type == "text/plain"
    assert abs((first.properties.expires_on - expires).total_seconds()) < 2
    client.begin_delete_secret("sdk-a").wait()
    assert client.get_deleted_secret("sdk-a").name == "sdk-a"
    client.begin_recover_deleted_secret("sdk-a").wait()
    assert client.get_secret("sdk-a").value == "2"
    client.begin_delete_secret("sdk-a").wait()
    client.purge_deleted_secret("sdk-a")
    assert "sdk-a" not in {p.name for p in client.list_deleted_secrets()}
