"""The authorize endpoint's decisions: who may sign in where, consent and its refusal, and which failures go
back to the app (redirect) versus stay on Microsoft's error page (untrusted client or redirect URI, an endpoint
the app's account types exclude, an account that cannot use the app there)."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlencode

import pytest

from simulator.testing import SignInPageError, http_session, sign_in
from tests.simulator.conftest import GRAPH_SCOPES, REDIRECT_URI

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")


def _flow(make_msal, app, tenant="common", **kwargs):
    client = make_msal(app.client_id, app.secret, tenant)
    return client, client.initiate_auth_code_flow(GRAPH_SCOPES, redirect_uri=REDIRECT_URI, **kwargs)


def _authorize_url(simulator, segment="common", **params):
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "scope": "openid offline_access User.Read", "state": "s-1",
             "code_challenge": challenge, "code_challenge_method": "S256", **params}
    return f"{simulator.url}/{segment}/oauth2/v2.0/authorize?{urlencode(query)}"


def _assert_aad_error(params, error, code, state):
    assert params["error"] == error
    assert params["error_description"].startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " in params["error_description"]
    assert params["state"] == state
    assert "code" not in params


def test_user_deny_redirects_access_denied_with_cancel(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.common_app)

    params = sign_in(flow["auth_uri"], world.alice, ca_path=simulator.ca_path, consent=False)

    _assert_aad_error(params, "access_denied", 65004, flow["state"])
    assert params["error_subcode"] == "cancel"


@pytest.mark.parametrize(("policy", "error"), [("65001", "consent_required"), ("90094", "access_denied")])
def test_tenant_requiring_admin_approval(simulator, world, make_msal, control, policy, error):
    control.set_tenant_policy(world.contoso, admin_consent_required=policy)
    _, flow = _flow(make_msal, world.common_app)

    params = sign_in(flow["auth_uri"], world.alice, ca_path=simulator.ca_path)

    _assert_aad_error(params, error, int(policy), flow["state"])


def test_a_permission_only_an_admin_may_grant_stops_a_user_even_where_users_may_consent(simulator, world,
                                                                                        make_msal, control):
    # Place.Read.All (delegated) is "Admin consent required: Yes": https://learn.microsoft.com/graph/permissions-reference
    client = make_msal(world.common_app.client_id, world.common_app.secret, "common")
    flow = client.initiate_auth_code_flow([*GRAPH_SCOPES, "Place.Read.All"], redirect_uri=REDIRECT_URI)

    params = sign_in(flow["auth_uri"], world.alice, ca_path=simulator.ca_path)

    _assert_aad_error(params, "access_denied", 90094, flow["state"])
    control.admin_consent(world.contoso, world.common_app.client_id)
    again = client.initiate_auth_code_flow([*GRAPH_SCOPES, "Place.Read.All"], redirect_uri=REDIRECT_URI)
    granted = sign_in(again["auth_uri"], world.alice, ca_path=simulator.ca_path, consent=False)
    assert "code" in granted


def test_admin_consent_lets_users_in_without_a_consent_page(simulator, world, make_msal, control):
    control.set_tenant_policy(world.contoso, admin_consent_required="90094")
    control.admin_consent(world.contoso, world.common_app.client_id)
    client, flow = _flow(make_msal, world.common_app)
    page = http_session(simulator.ca_path).get(flow["auth_uri"])
    assert 'data-account="alice@contoso.test"' in page.text

    params = sign_in(flow["auth_uri"], world.alice, ca_path=simulator.ca_path, consent=False)  # never asked

    assert "access_token" in client.acquire_token_by_auth_code_flow(flow, params)


def test_consent_is_remembered_per_user_and_app(simulator, world, make_msal):
    _, first = _flow(make_msal, world.common_app)
    sign_in(first["auth_uri"], world.alice, ca_path=simulator.ca_path)
    _, second = _flow(make_msal, world.common_app)

    params = sign_in(second["auth_uri"], world.alice, ca_path=simulator.ca_path, consent=False)

    assert "code" in params
    assert simulator.control.state()["consents"][0]["scopes"] == sorted(GRAPH_SCOPES, key=str)


def _error_page(auth_uri, account, simulator, **kwargs):
    """Microsoft's own error page: nothing goes back to the redirect URI, so the app never hears of it."""
    with pytest.raises(SignInPageError) as raised:
        sign_in(auth_uri, account, ca_path=simulator.ca_path, **kwargs)
    assert simulator.sim.counters.snapshot()["counts"].get("identity.authorize.code_issued", 0) == 0
    return raised.value


@pytest.mark.parametrize("tenant", ["common", "organizations"])
def test_single_tenant_app_on_a_multi_tenant_endpoint_is_a_50194_page(simulator, world, make_msal, tenant):
    _, flow = _flow(make_msal, world.single_app, tenant)

    response = http_session(simulator.ca_path).get(flow["auth_uri"], allow_redirects=False)

    assert response.status_code == 400 and "Location" not in response.headers
    page = _error_page(flow["auth_uri"], world.alice, simulator)
    assert (page.code, page.error) == (50194, "invalid_request")
    assert "not configured as a multi-tenant application" in page.text


def test_single_tenant_app_refuses_a_user_of_another_tenant_with_a_50020_page(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.single_app, world.contoso)

    page = _error_page(flow["auth_uri"], world.carol, simulator)

    assert (page.code, page.error) == (50020, "access_denied")
    assert "carol@fabrikam.test" in page.text and "does not exist in tenant 'Contoso'" in page.text


def test_personal_account_on_common_for_a_work_only_app_is_a_consumers_page(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.org_app)

    page = _error_page(flow["auth_uri"], world.pat, simulator)

    assert (page.code, page.error) == (None, "unauthorized_client")
    assert page.text.startswith("The client does not exist or is not enabled for consumers.")


def test_consumers_endpoint_for_a_work_only_app_is_refused_before_sign_in(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.org_app, "consumers")

    response = http_session(simulator.ca_path).get(flow["auth_uri"], allow_redirects=False)

    assert response.status_code == 400 and "Location" not in response.headers
    assert 'data-error="unauthorized_client"' in response.text and "pick-account" not in response.text


def test_organizations_endpoint_does_not_offer_personal_accounts(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.common_app, "organizations")

    with pytest.raises(LookupError):
        sign_in(flow["auth_uri"], world.pat, ca_path=simulator.ca_path)


def test_personal_account_typed_on_organizations_is_a_500200_page(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.common_app, "organizations")

    page = _error_page(flow["auth_uri"], world.pat, simulator, type_address=True)

    assert page.code == 500200 and f"'{world.pat}' is a personal Microsoft account" in page.text


def test_consumers_only_app_off_consumers_is_a_9002331_page(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.personal_app)

    page = _error_page(flow["auth_uri"], world.pat, simulator)

    assert (page.code, page.error) == (9002331, "invalid_request")


@pytest.mark.parametrize(("hint", "offered", "hidden"), [("organizations", "alice", "pat"),
                                                          ("consumers", "pat", "alice")])
def test_domain_hint_goes_straight_to_work_or_personal_sign_in(simulator, world, make_msal, hint, offered, hidden):
    client, flow = _flow(make_msal, world.common_app, domain_hint=hint)
    page = http_session(simulator.ca_path).get(flow["auth_uri"]).text

    assert f'data-account="{getattr(world, offered)}"' in page
    assert f'data-account="{getattr(world, hidden)}"' not in page
    # A hint, not a rule: the other kind of account can still be typed on /common.
    params = sign_in(flow["auth_uri"], getattr(world, hidden), ca_path=simulator.ca_path, type_address=True)
    assert "access_token" in client.acquire_token_by_auth_code_flow(flow, params)


def test_consumers_only_app_works_on_consumers(simulator, world, make_msal):
    client, flow = _flow(make_msal, world.personal_app, "consumers")
    params = sign_in(flow["auth_uri"], world.pat, ca_path=simulator.ca_path)
    assert "access_token" in client.acquire_token_by_auth_code_flow(flow, params)


def test_wrong_redirect_uri_shows_an_error_page_and_never_redirects(simulator, world):
    url = _authorize_url(simulator, client_id=world.common_app.client_id, redirect_uri="https://evil.test/cb")

    response = http_session(simulator.ca_path).get(url, allow_redirects=False)

    assert response.status_code == 400 and "Location" not in response.headers
    assert 'data-error-code="50011"' in response.text
    with pytest.raises(SignInPageError) as raised:
        sign_in(url, world.alice, ca_path=simulator.ca_path)
    assert raised.value.code == 50011 and "https://evil.test/cb" in raised.value.text


def test_unknown_client_shows_an_error_page(simulator, world):
    url = _authorize_url(simulator, client_id="no-such-app", redirect_uri=REDIRECT_URI)
    with pytest.raises(SignInPageError) as raised:
        sign_in(url, world.alice, ca_path=simulator.ca_path)
    assert (raised.value.code, raised.value.error) == (700016, "unauthorized_client")


def test_missing_pkce_is_refused_by_redirect(simulator, world):
    url = _authorize_url(simulator, client_id=world.common_app.client_id, redirect_uri=REDIRECT_URI,
                         code_challenge="", code_challenge_method="")

    params = sign_in(url, world.alice, ca_path=simulator.ca_path)

    _assert_aad_error(params, "invalid_request", 9002325, "s-1")


def test_login_hint_skips_the_account_picker(simulator, world, make_msal):
    client, flow = _flow(make_msal, world.common_app, login_hint=world.bob)
    page = http_session(simulator.ca_path).get(flow["auth_uri"])

    assert 'id="accept"' in page.text and 'data-account="bob@contoso.test"' in page.text
    params = sign_in(flow["auth_uri"], world.bob, ca_path=simulator.ca_path)
    assert client.acquire_token_by_auth_code_flow(flow, params)["id_token_claims"]["preferred_username"] == world.bob


def test_sign_in_page_contract_for_browser_tests(simulator, world, make_msal):
    _, flow = _flow(make_msal, world.common_app)
    page = http_session(simulator.ca_path).get(flow["auth_uri"]).text

    for address in (world.alice, world.bob, world.carol, world.pat):
        assert f'data-account="{address}"' in page
    assert 'name="request_id"' in page and 'id="pick-account"' in page


def test_a_finished_sign_in_cannot_be_replayed(simulator, world, make_msal):
    session = http_session(simulator.ca_path)
    _, flow = _flow(make_msal, world.common_app)
    picker = session.get(flow["auth_uri"]).text
    request_id = picker.split('name="request_id" value="')[1].split('"')[0]
    endpoint = f"{simulator.url}/common/oauth2/v2.0/authorize"
    consent = session.post(endpoint, data={"request_id": request_id, "account": world.alice}, allow_redirects=False)
    assert 'id="accept"' in consent.text
    done = session.post(endpoint, data={"request_id": request_id, "action": "accept"}, allow_redirects=False)
    assert done.status_code == 302

    again = session.post(endpoint, data={"request_id": request_id, "action": "accept"}, allow_redirects=False)

    assert again.status_code == 400 and 'id="error"' in again.text
