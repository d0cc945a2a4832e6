"""OpenID Connect discovery and the signing keys."""

from __future__ import annotations

import json

import jwt
import pytest

from simulator.testing import http_session, sign_in
from tests.simulator.conftest import GRAPH_SCOPES, REDIRECT_URI

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")


def _get(simulator, path):
    return http_session(simulator.ca_path).get(simulator.url + path)


def test_common_issuer_is_a_template_and_endpoints_point_back(simulator):
    doc = _get(simulator, "/common/v2.0/.well-known/openid-configuration").json()

    assert doc["issuer"] == f"{simulator.url}/{{tenantid}}/v2.0"
    assert doc["authorization_endpoint"] == f"{simulator.url}/common/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{simulator.url}/common/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{simulator.url}/common/discovery/v2.0/keys"
    assert "client_secret_post" in doc["token_endpoint_auth_methods_supported"]


def test_tenant_domain_resolves_to_its_id(simulator, world):
    doc = _get(simulator, "/contoso.test/v2.0/.well-known/openid-configuration").json()

    assert doc["issuer"] == f"{simulator.url}/{world.contoso}/v2.0"
    assert doc["token_endpoint"] == f"{simulator.url}/{world.contoso}/oauth2/v2.0/token"


def test_consumers_issuer_is_the_msa_tenant(simulator):
    doc = _get(simulator, "/consumers/v2.0/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"{simulator.url}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"


def test_unknown_tenant(simulator):
    response = _get(simulator, "/nobody.test/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert (response.json()["error"], response.json()["error_codes"]) == ("invalid_tenant", [90002])


def test_id_token_verifies_with_the_published_key(simulator, world, make_msal):
    client = make_msal(world.common_app.client_id, world.common_app.secret)
    flow = client.initiate_auth_code_flow(GRAPH_SCOPES, redirect_uri=REDIRECT_URI)
    result = client.acquire_token_by_auth_code_flow(flow, sign_in(flow["auth_uri"], world.alice,
                                                                  ca_path=simulator.ca_path))
    [jwk] = _get(simulator, f"/{world.contoso}/discovery/v2.0/keys").json()["keys"]

    key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    claims = jwt.decode(result["id_token"], key, algorithms=["RS256"], audience=world.common_app.client_id,
                        issuer=f"{simulator.url}/{world.contoso}/v2.0")

    assert jwt.get_unverified_header(result["id_token"])["kid"] == jwk["kid"]
    assert claims["preferred_username"] == world.alice
