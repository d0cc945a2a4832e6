"""Authorization-code redemption rules at the token endpoint: single use, 10-minute life, PKCE, redirect URI,
client binding; and the error body clients parse."""

from __future__ import annotations

import pytest

from simulator.testing import http_session, sign_in
from tests.simulator.conftest import GRAPH_SCOPES, REDIRECT_URI

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")


@pytest.fixture
def code_flow(simulator, world, make_msal):
    """An MSAL client, its flow, and the redirect parameters, with the code not yet redeemed."""
    client = make_msal(world.common_app.client_id, world.common_app.secret)
    flow = client.initiate_auth_code_flow(GRAPH_SCOPES, redirect_uri=REDIRECT_URI)
    params = sign_in(flow["auth_uri"], world.alice, ca_path=simulator.ca_path)
    return client, flow, params


def _redeem(simulator, app, code, verifier, redirect_uri=REDIRECT_URI, **extra):
    return http_session(simulator.ca_path).post(
        f"{simulator.url}/common/oauth2/v2.0/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
              "redirect_uri": redirect_uri, "client_id": app.client_id, "client_secret": app.secret,
              "scope": "User.Read offline_access openid", **extra},
    )


def _codes(response):
    return response.status_code, response.json()["error"], response.json()["error_codes"]


def test_code_cannot_be_redeemed_twice(simulator, world, code_flow):
    client, flow, params = code_flow
    assert "access_token" in client.acquire_token_by_auth_code_flow(flow, params)

    replay = _redeem(simulator, world.common_app, params["code"], flow["code_verifier"])

    assert _codes(replay) == (400, "invalid_grant", [54005])
    assert simulator.sim.counters.snapshot()["counts"]["identity.token.authorization_code.error.54005"] == 1


def test_pkce_verifier_mismatch_is_refused(world, code_flow):
    client, flow, params = code_flow
    flow["code_verifier"] = "a-different-verifier-" + "x" * 30

    result = client.acquire_token_by_auth_code_flow(flow, params)

    assert (result["error"], result["error_codes"]) == ("invalid_grant", [501481])


def test_code_expires_after_ten_minutes(simulator, world, code_flow, control):
    _, flow, params = code_flow
    control.advance_clock(seconds=601)

    assert _codes(_redeem(simulator, world.common_app, params["code"], flow["code_verifier"])) == (
        400, "invalid_grant", [70008])


def test_redirect_uri_must_match_the_authorize_request(simulator, world, code_flow):
    _, flow, params = code_flow
    response = _redeem(simulator, world.common_app, params["code"], flow["code_verifier"],
                       redirect_uri="https://app.test/other")
    assert _codes(response) == (400, "invalid_grant", [500112])


def test_code_is_bound_to_its_client(simulator, world, code_flow):
    _, flow, params = code_flow
    response = _redeem(simulator, world.org_app, params["code"], flow["code_verifier"])
    assert _codes(response) == (400, "invalid_grant", [70000])


def test_a_failed_redemption_does_not_burn_the_code(simulator, world, code_flow):
    _, flow, params = code_flow
    assert _redeem(simulator, world.common_app, params["code"], "wrong" * 10).status_code == 400
    assert _redeem(simulator, world.common_app, params["code"], flow["code_verifier"]).status_code == 200


def test_client_info_and_correlation_id(simulator, world, code_flow):
    _, flow, params = code_flow
    ok = _redeem(simulator, world.common_app, params["code"], flow["code_verifier"], client_info="1")
    failed = http_session(simulator.ca_path).post(
        f"{simulator.url}/common/oauth2/v2.0/token", data={"grant_type": "authorization_code"},
        headers={"client-request-id": "11111111-2222-3333-4444-555555555555"},
    )

    assert ok.json()["client_info"] == params["client_info"]
    assert failed.json()["correlation_id"] == "11111111-2222-3333-4444-555555555555"
    assert failed.json()["error_codes"] == [900144]


@pytest.mark.parametrize(
    ("data", "error", "code"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type", 70003),
        ({"grant_type": "refresh_token", "refresh_token": "garbage"}, "invalid_grant", 9002313),
        ({"grant_type": "authorization_code", "code": "garbage", "redirect_uri": REDIRECT_URI}, "invalid_grant",
         9002313),
    ],
)
def test_malformed_requests(simulator, world, data, error, code):
    response = http_session(simulator.ca_path).post(
        f"{simulator.url}/common/oauth2/v2.0/token",
        data={"client_id": world.common_app.client_id, "client_secret": world.common_app.secret, **data},
    )
    assert _codes(response) == (400, error, [code])
