"""MSAL's real authorization-code flow against the simulator: sign-in, account, refresh, rotation, and the
ways a grant dies (idle 90 days, sessions revoked, consent withdrawn, user disabled)."""

from __future__ import annotations

import pytest

from simulator.testing import http_session, sign_in
from tests.simulator.conftest import GRAPH_SCOPES, REDIRECT_URI

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")


def _signed_in(simulator, make_msal, app, account, tenant="common", **flow_kwargs):
    client = make_msal(app.client_id, app.secret, tenant)
    flow = client.initiate_auth_code_flow(GRAPH_SCOPES, redirect_uri=REDIRECT_URI, **flow_kwargs)
    result = client.acquire_token_by_auth_code_flow(flow, sign_in(flow["auth_uri"], account, ca_path=simulator.ca_path))
    assert "access_token" in result, result
    return client, result


def _refresh_directly(simulator, app, refresh_token):
    """A raw token request, bypassing MSAL's cache of failed requests."""
    return http_session(simulator.ca_path).post(
        f"{simulator.url}/common/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app.client_id,
            "client_secret": app.secret,
            "scope": "User.Read offline_access",
        },
    )


def test_auth_code_flow_with_pkce_gives_tokens_and_an_account(simulator, world, make_msal):
    client, result = _signed_in(simulator, make_msal, world.common_app, world.alice)

    oid, tid = world.ids[world.alice], world.contoso
    [account] = client.get_accounts()
    assert account["home_account_id"] == f"{oid}.{tid}"
    assert account["username"] == world.alice
    claims = result["id_token_claims"]
    assert claims["iss"] == f"{simulator.url}/{tid}/v2.0"
    assert claims["aud"] == world.common_app.client_id
    assert (claims["oid"], claims["tid"], claims["ver"]) == (oid, tid, "2.0")
    assert claims["exp"] > claims["iat"] >= claims["nbf"] - 1
    assert result["expires_in"] >= 3599 and "refresh_token" in result

    grant = simulator.sim.tokens.lookup(result["access_token"])
    assert grant is not None
    assert (grant.user_id, grant.tenant_id, grant.client_id) == (oid, tid, world.common_app.client_id)
    assert grant.scopes == frozenset(GRAPH_SCOPES)
    counts = simulator.sim.counters.snapshot()["counts"]
    assert counts["identity.token.authorization_code.ok"] == 1


def test_form_post_response_mode(simulator, world, make_msal):
    client, _result = _signed_in(simulator, make_msal, world.org_app, world.carol, response_mode="form_post")
    assert client.get_accounts()[0]["home_account_id"].endswith("." + world.fabrikam)


def test_personal_account_signs_in_on_common(simulator, world, make_msal):
    _client, result = _signed_in(simulator, make_msal, world.common_app, world.pat)
    assert result["id_token_claims"]["tid"] == "9188040d-6c67-4c5b-b112-36a304b66dad"


def test_silent_refresh_rotates_the_refresh_token(simulator, world, make_msal):
    client, first = _signed_in(simulator, make_msal, world.common_app, world.alice)
    [account] = client.get_accounts()

    refreshed = client.acquire_token_silent(GRAPH_SCOPES, account, force_refresh=True)

    assert refreshed is not None and refreshed["refresh_token"] != first["refresh_token"]
    assert refreshed["access_token"] != first["access_token"]
    replay = _refresh_directly(simulator, world.common_app, first["refresh_token"])
    assert replay.status_code == 400
    assert (replay.json()["error"], replay.json()["error_codes"]) == ("invalid_grant", [70000])
    assert _refresh_directly(simulator, world.common_app, refreshed["refresh_token"]).status_code == 200


def test_refresh_token_idle_for_90_days_dies_but_use_keeps_it_alive(simulator, world, make_msal, control):
    client, _ = _signed_in(simulator, make_msal, world.common_app, world.alice)
    [account] = client.get_accounts()

    control.advance_clock(days=89)
    assert "access_token" in client.acquire_token_silent_with_error(GRAPH_SCOPES, account, force_refresh=True)
    control.advance_clock(days=89)  # 178 days after sign-in, 89 after the last use: still alive
    assert "access_token" in client.acquire_token_silent_with_error(GRAPH_SCOPES, account, force_refresh=True)
    control.advance_clock(days=91)
    error = client.acquire_token_silent_with_error(GRAPH_SCOPES, account, force_refresh=True)

    assert error["error"] == "invalid_grant"
    assert error["error_codes"] == [700082]
    assert error["error_description"].startswith("AADSTS700082: The refresh token has expired due to inactivity.")


def test_revoked_sessions_give_50173(simulator, world, make_msal, control):
    client, result = _signed_in(simulator, make_msal, world.common_app, world.alice)
    [account] = client.get_accounts()

    control.advance_clock(seconds=5)
    control.revoke_sessions(world.alice)
    error = client.acquire_token_silent_with_error(GRAPH_SCOPES, account, force_refresh=True)

    assert (error["error"], error["error_codes"]) == ("invalid_grant", [50173])
    assert simulator.sim.tokens.lookup(result["access_token"]) is None


def test_withdrawn_consent_gives_65001_with_consent_required(simulator, world, make_msal, control):
    client, _ = _signed_in(simulator, make_msal, world.common_app, world.alice)
    [account] = client.get_accounts()

    control.revoke_consent(world.alice, world.common_app.client_id)
    error = client.acquire_token_silent_with_error(GRAPH_SCOPES, account, force_refresh=True)

    assert (error["error"], error["error_codes"], error["suberror"]) == ("invalid_grant", [65001], "consent_required")
    assert error["classification"] == "consent_required"


def test_disabled_user_gives_50057(simulator, world, make_msal, control):
    client, _ = _signed_in(simulator, make_msal, world.common_app, world.alice)
    [account] = client.get_accounts()

    control.disable_user(world.alice)
    error = client.acquire_token_silent_with_error(GRAPH_SCOPES, account, force_refresh=True)

    assert (error["error"], error["error_codes"]) == ("invalid_grant", [50057])


def test_reauthorising_after_revocation_works_again(simulator, world, make_msal, control):
    _signed_in(simulator, make_msal, world.common_app, world.alice)
    control.revoke_consent(world.alice, world.common_app.client_id)

    _client, result = _signed_in(simulator, make_msal, world.common_app, world.alice)

    assert _refresh_directly(simulator, world.common_app, result["refresh_token"]).status_code == 200


@pytest.mark.parametrize("by_domain", [True, False], ids=["by-domain", "by-id"])
def test_tenant_specific_authority_by_domain_or_id(simulator, world, make_msal, by_domain):
    segment = "contoso.test" if by_domain else world.contoso
    _client, result = _signed_in(simulator, make_msal, world.single_app, world.bob, tenant=segment)
    assert result["id_token_claims"]["tid"] == world.contoso


def test_sweeping_dead_grants_keeps_idle_refresh_tokens_answering_700082(simulator, world, make_msal, control):
    simulator.sim.identity.settings.prune_every = 1
    client, first = _signed_in(simulator, make_msal, world.common_app, world.alice)
    [account] = client.get_accounts()
    second = client.acquire_token_silent(GRAPH_SCOPES, account, force_refresh=True)

    control.advance_clock(days=91)
    _signed_in(simulator, make_msal, world.common_app, world.bob)  # issuing triggers a sweep

    assert first["refresh_token"] not in simulator.sim.identity.refresh_tokens  # rotated out a day ago: gone
    assert _refresh_directly(simulator, world.common_app, second["refresh_token"]).json()["error_codes"] == [700082]
