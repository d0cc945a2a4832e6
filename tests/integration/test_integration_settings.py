"""Integration settings through the HTTP API against Azurite, the Key Vault endpoint and the simulator."""

import pytest

from simulator.directory import AUDIENCE_MY_ORG
from tests.helpers import RETURN_ORIGIN, configure, integration_body, make_directory, new_system


def test_unconfigured_system_shows_the_redirect_uri_to_register(api, app):
    system = new_system()
    response = api.get(f"/api/systems/{system}/integration")
    assert response.status_code == 200
    assert response.json() == {"system": system, "configured": False, "redirect_uri": app.redirect_uri}


def test_save_validates_against_microsoft_and_never_returns_the_secret(api, directory, key_vault):
    system = new_system()
    response = api.put(f"/api/systems/{system}/integration",
                       json=integration_body(directory, client_secret_expires_on="2028-01-31"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert directory.secret not in response.text
    assert body["client_id"] == directory.client_id
    assert body["client_secret"]["set"] is True
    assert body["client_secret"]["expires_on"].startswith("2028-01-31")
    assert body["credentials"]["ok"] is True
    assert body["allowed_return_origins"] == [RETURN_ORIGIN]
    again = api.get(f"/api/systems/{system}/integration")
    assert again.status_code == 200 and directory.secret not in again.text
    # Saving again without a secret keeps the stored one (and re-validates it).
    update = api.put(f"/api/systems/{system}/integration",
                     json={k: v for k, v in integration_body(directory, enabled=False).items() if k != "client_secret"})
    assert update.status_code == 200, update.text
    assert update.json()["enabled"] is False


def test_secret_is_in_key_vault_not_in_the_table(api, directory, storage_connection_string, app):
    from azure.data.tables import TableServiceClient

    system = new_system()
    configure(api, system, directory)
    service = TableServiceClient.from_connection_string(storage_connection_string)
    table = service.get_table_client(app.env["TABLE_PREFIX"] + "integrations")
    row = table.get_entity(system, "integration")
    assert directory.secret not in str(dict(row))
    assert row["secret_name"].startswith("clientsecret-")


@pytest.mark.parametrize(("tamper", "code"), [
    ("wrong_secret", "AADSTS7000215"),
    ("expired_secret", "AADSTS7000222"),
    ("unknown_app", "AADSTS700016"),
])
def test_wrong_credentials_are_refused_with_microsofts_code(api, simulator, directory, tamper, code):
    body = integration_body(directory)
    if tamper == "wrong_secret":
        body["client_secret"] = "not-the-secret"
    elif tamper == "expired_secret":
        added = simulator.control.add_secret(directory.client_id, expires_in_days=1)
        simulator.control.advance_clock(days=2)
        body["client_secret"] = added["value"]
    else:
        body["client_id"] = "11111111-2222-3333-4444-555555555555"
    system = new_system()
    response = api.put(f"/api/systems/{system}/integration", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "credentials_invalid"
    assert error["microsoft_code"] == code
    assert error["message"].startswith("App ID or Secret is incorrect")
    if code == "AADSTS700016":
        assert "few minutes" in error["message"]
    # Nothing was saved.
    assert api.get(f"/api/systems/{system}/integration").json()["configured"] is False


def test_single_tenant_needs_its_tenant_and_is_checked_there(api, simulator, app):
    d = make_directory(simulator, app.redirect_uri, audience=AUDIENCE_MY_ORG)
    system = new_system()
    missing = api.put(f"/api/systems/{system}/integration", json=integration_body(d, account_type="single_tenant"))
    assert missing.status_code == 400
    assert missing.json()["error"]["details"] == {"field": "tenant_id"}
    ok = api.put(f"/api/systems/{system}/integration",
                 json=integration_body(d, account_type="single_tenant", tenant_id=d.tenant_id))
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(("patch", "field"), [
    ({"client_id": "not-a-guid"}, "client_id"),
    ({"account_type": "everyone"}, "account_type"),
    ({"enabled": "yes"}, "enabled"),
    ({"allowed_return_origins": ["ftp://x.example"]}, "allowed_return_origins"),
    ({"allowed_return_origins": ["http://booking.example.edu"]}, "allowed_return_origins"),
    ({"allowed_return_origins": "https://x.example"}, "allowed_return_origins"),
    ({"client_secret_expires_on": "next year"}, "client_secret_expires_on"),
    ({"webhook_url": "http://hooks.example.edu/x"}, "webhook_url"),
    ({"tenant_id": "not a tenant"}, "tenant_id"),
])
def test_bad_fields_get_a_400_naming_the_field(api, directory, patch, field):
    response = api.put(f"/api/systems/{new_system()}/integration", json=integration_body(directory, **patch))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


def test_first_save_needs_a_secret(api, directory):
    body = {k: v for k, v in integration_body(directory).items() if k != "client_secret"}
    response = api.put(f"/api/systems/{new_system()}/integration", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "client_secret"


def test_invalid_system_id_is_refused(api):
    response = api.get("/api/systems/bad%20id!/integration")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "system"


def test_missing_function_key_is_401(app):
    anonymous = app.client(key=None)
    assert anonymous.get(f"/api/systems/{new_system()}/integration").status_code == 401
    assert app.client(key="wrong").get(f"/api/systems/{new_system()}/integration").status_code == 401


def test_location_settings_round_trip_and_populate_since(api):
    system = new_system()
    default = api.get(f"/api/systems/{system}/locations/main")
    assert default.json()["title_mode"] == "patron_name" and default.json()["populate_creator"] is False
    saved = api.put(f"/api/systems/{system}/locations/main",
                    json={"title_mode": "public_nickname", "populate_creator": True})
    assert saved.status_code == 200, saved.text
    since = saved.json()["populate_creator_since"]
    assert since is not None
    again = api.put(f"/api/systems/{system}/locations/main",
                    json={"title_mode": "patron_name_email", "populate_creator": True})
    assert again.json()["populate_creator_since"] == since  # stays: only switching it on sets it
    bad = api.put(f"/api/systems/{system}/locations/main", json={"title_mode": "nickname"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "title_mode"


@pytest.mark.parametrize(("patch", "field"), [
    ({"allowed_return_origins": ["http://["]}, "allowed_return_origins"),
    ({"webhook_url": "https://[::1", "webhook_secret": "s" * 40}, "webhook_url"),
])
def test_found_by_fuzzing_unparsable_urls_are_a_400(api, directory, patch, field):
    response = api.put(f"/api/systems/{new_system()}/integration", json=integration_body(directory, **patch))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


@pytest.mark.parametrize("location", ["a%23b", "a%3Fb", "a%5Cb"])
def test_found_by_fuzzing_location_ids_are_validated_on_read(api, location):
    response = api.get(f"/api/systems/{new_system()}/locations/{location}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == "location"
