"""MSAL's client-credentials grant, and the credential failures the product must name (the integration's
"App ID or Secret is incorrect" check lives on exactly these answers)."""

from __future__ import annotations

import pytest

from simulator.testing import http_session

GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]


def test_app_token_for_the_home_tenant(simulator, world, make_msal):
    client = make_msal(world.org_app.client_id, world.org_app.secret, world.contoso)

    result = client.acquire_token_for_client(GRAPH_DEFAULT)

    assert result["token_type"] == "Bearer" and result["expires_in"] >= 3599
    grant = simulator.sim.tokens.lookup(result["access_token"])
    assert grant is not None
    assert (grant.user_id, grant.tenant_id) == (None, world.contoso)
    assert grant.scopes == frozenset({"Calendars.ReadWrite"})
    assert simulator.sim.counters.snapshot()["counts"]["identity.token.client_credentials.ok"] == 1


def test_wrong_secret_is_7000215(world, make_msal):
    result = make_msal(world.org_app.client_id, "not-the-secret", world.contoso).acquire_token_for_client(GRAPH_DEFAULT)

    assert (result["error"], result["error_codes"]) == ("invalid_client", [7000215])
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")


def test_expired_secret_is_7000222(world, make_msal, control):
    secret = control.add_secret(world.org_app.client_id, expires_in_days=30)["value"]
    client = make_msal(world.org_app.client_id, secret, world.contoso)
    assert "access_token" in client.acquire_token_for_client(GRAPH_DEFAULT)

    control.advance_clock(days=31)
    client = make_msal(world.org_app.client_id, secret, world.contoso)  # a new client: no cached token
    result = client.acquire_token_for_client(GRAPH_DEFAULT)

    assert (result["error"], result["error_codes"]) == ("invalid_client", [7000222])


def test_unknown_application_is_700016(world, make_msal):
    result = make_msal("00000000-1111-2222-3333-444444444444", "x", world.contoso).acquire_token_for_client(
        GRAPH_DEFAULT
    )

    assert (result["error"], result["error_codes"]) == ("unauthorized_client", [700016])


def test_single_tenant_app_is_not_found_in_another_tenant(world, make_msal):
    client = make_msal(world.single_app.client_id, world.single_app.secret, world.fabrikam)
    result = client.acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error_codes"] == [700016]


def test_multi_tenant_app_needs_admin_consent_in_a_foreign_tenant(world, make_msal, control):
    client = make_msal(world.org_app.client_id, world.org_app.secret, world.fabrikam)
    assert client.acquire_token_for_client(GRAPH_DEFAULT)["error_codes"] == [700016]

    control.admin_consent(world.fabrikam, world.org_app.client_id)
    client = make_msal(world.org_app.client_id, world.org_app.secret, world.fabrikam)

    assert "access_token" in client.acquire_token_for_client(GRAPH_DEFAULT)


def _token(simulator, segment, **data):
    return http_session(simulator.ca_path).post(f"{simulator.url}/{segment}/oauth2/v2.0/token", data=data)


def test_status_codes_and_body_shape_of_client_errors(simulator, world):
    wrong = _token(simulator, world.contoso, grant_type="client_credentials", client_id=world.org_app.client_id,
                   client_secret="nope", scope=GRAPH_DEFAULT[0])
    unknown = _token(simulator, world.contoso, grant_type="client_credentials", client_id="missing-app",
                     client_secret="nope", scope=GRAPH_DEFAULT[0])

    assert wrong.status_code == 401 and unknown.status_code == 400
    body = wrong.json()
    assert set(body) == {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
                         "error_uri"}
    assert body["error_uri"] == f"{simulator.url}/error?code=7000215"
    assert f"Trace ID: {body['trace_id']}\r\nCorrelation ID: {body['correlation_id']}" in body["error_description"]
    assert body["error_description"].endswith(f"Timestamp: {body['timestamp']}")


def test_secret_in_http_basic_is_accepted(simulator, world):
    response = http_session(simulator.ca_path).post(
        f"{simulator.url}/{world.contoso}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": GRAPH_DEFAULT[0]},
        auth=(world.org_app.client_id, world.org_app.secret),
    )
    assert response.status_code == 200 and response.json()["access_token"]


@pytest.mark.parametrize(
    ("segment", "scope", "error", "code"),
    [
        ("no-such-tenant.test", GRAPH_DEFAULT[0], "invalid_request", 90002),
        ("organizations", GRAPH_DEFAULT[0], "invalid_request", 50059),
        ("contoso.test", "https://graph.microsoft.com/Calendars.Read", "invalid_scope", 1002012),
        ("contoso.test", "https://example.test/.default", "invalid_resource", 500011),
    ],
)
def test_request_shape_errors(simulator, world, segment, scope, error, code):
    response = _token(simulator, segment, grant_type="client_credentials", client_id=world.org_app.client_id,
                      client_secret=world.org_app.secret, scope=scope)
    assert response.status_code == 400
    assert (response.json()["error"], response.json()["error_codes"]) == (error, [code])
