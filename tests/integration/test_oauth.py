"""The authorization dance through the app's HTTP routes, Microsoft's simulated sign-in pages and the callback."""

from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
from azure.data.tables import TableServiceClient

from simulator.directory import AUDIENCE_MULTI_ORG, AUDIENCE_MY_ORG
from simulator.testing import SignInPageError, http_session, sign_in
from tests.helpers import (
    RETURN_ORIGIN,
    RETURN_URL,
    authorize,
    configure,
    connect,
    follow_sign_in,
    make_directory,
    new_system,
    post_callback,
    query_of,
)


def test_user_connects_and_the_connection_lists_calendars(api, simulator, directory, system):
    outcome = connect(api, simulator, system, "user", "u42", directory.staff)
    assert outcome == {"tab": "sync", "outcome": "connected", "kind": "user", "id": "u42", "account": directory.staff}
    status = api.get(f"/api/systems/{system}/connections/user/u42").json()
    assert status["status"] == "connected"
    assert status["account"]["username"] == directory.staff
    assert status["account"]["object_id"] == directory.staff_id
    assert status["sync_resource"] == directory.staff
    calendars = api.get(f"/api/systems/{system}/connections/user/u42/calendars")
    assert calendars.status_code == 200, calendars.text
    names = [c["name"] for c in calendars.json()["calendars"]]
    assert "Calendar" in names


def test_space_with_delegated_room_mailbox(api, simulator, directory, system):
    connect(api, simulator, system, "space", "room101", directory.staff)
    patched = api.patch(f"/api/systems/{system}/connections/space/room101",
                        json={"sync_resource": directory.room, "two_way": True, "location": "main"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["sync_resource"] == directory.room
    calendars = api.get(f"/api/systems/{system}/connections/space/room101/calendars").json()
    assert calendars["sync_resource"] == directory.room
    room_calendar = calendars["calendars"][0]
    assert room_calendar["owner"] == directory.room and room_calendar["can_edit"] is True
    chosen = api.patch(f"/api/systems/{system}/connections/space/room101",
                       json={"sync_calendar_id": room_calendar["id"]})
    assert chosen.status_code == 200 and chosen.json()["sync_calendar_id"] == room_calendar["id"]


def test_room_without_delegation_is_a_clear_403(api, simulator, directory, system):
    connect(api, simulator, system, "space", "room202", directory.staff)
    response = api.patch(f"/api/systems/{system}/connections/space/room202",
                         json={"sync_resource": directory.other_room})
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "no_mailbox_access"
    assert "delegate" in error["message"]
    # Nothing changed.
    assert api.get(f"/api/systems/{system}/connections/space/room202").json()["sync_resource"] == directory.staff


def test_consent_denied(api, simulator, directory, system):
    landing = follow_sign_in(api, simulator, authorize(api, system, "user", "u1"), directory.staff, consent=False)
    outcome = query_of(landing)
    assert landing.startswith(RETURN_URL.split("?")[0])
    assert outcome["outcome"] == "consent_denied"
    assert api.get(f"/api/systems/{system}/connections/user/u1").status_code == 404


@pytest.mark.parametrize("policy", ["65001", "90094"])
def test_administrator_approval_required(api, simulator, app, policy):
    d = make_directory(simulator, app.redirect_uri, admin_consent_required=policy)
    system = new_system()
    configure(api, system, d)
    landing = follow_sign_in(api, simulator, authorize(api, system, "user", "u1"), d.staff)
    outcome = query_of(landing)
    assert outcome["outcome"] == "admin_approval_required"
    assert outcome["microsoft_code"] == f"AADSTS{policy}"


# --- wrong account type: Microsoft's own page, so the product prevents it ------------------------------------


def _microsoft_page(api, simulator, start_url, account, **kwargs):
    """Follow /oauth/start into Microsoft's pages and expect its error page: the browser never comes back."""
    session = http_session(simulator.ca_path)
    start = session.get(start_url, allow_redirects=False, timeout=30)
    assert start.status_code == 302, start.text
    with pytest.raises(SignInPageError) as raised:
        sign_in(start.headers["Location"], account, ca_path=simulator.ca_path, **kwargs)
    return start.headers["Location"], raised.value


def test_personal_account_on_a_work_only_app_saved_as_common_stays_on_microsofts_page(api, simulator, app):
    d = make_directory(simulator, app.redirect_uri, audience=AUDIENCE_MULTI_ORG)
    system = new_system()
    configure(api, system, d, account_type="common", tenant_id=d.tenant_id)  # the admin picked the wrong type

    _, page = _microsoft_page(api, simulator, authorize(api, system, "user", "u1"), d.personal)

    assert page.error == "unauthorized_client" and "not enabled for consumers" in page.text
    assert api.get(f"/api/systems/{system}/connections/user/u1").status_code == 404


def test_organizations_signs_in_at_organizations_where_a_personal_account_cannot_start(api, simulator, app):
    d = make_directory(simulator, app.redirect_uri, audience=AUDIENCE_MULTI_ORG)
    system = new_system()
    configure(api, system, d, account_type="organizations")
    sign_in_info = api.get(f"/api/systems/{system}/integration").json()["sign_in"]
    assert sign_in_info["authority"] == f"{simulator.url}/organizations"
    assert sign_in_info["accounts"] == ["work_or_school"]

    auth_uri, page = _microsoft_page(api, simulator, authorize(api, system, "user", "u1"), d.personal,
                                     type_address=True)

    assert urlsplit(auth_uri).path == "/organizations/oauth2/v2.0/authorize"
    assert page.code == 500200
    assert query_of(follow_sign_in(api, simulator, authorize(api, system, "user", "u1"), d.staff))["outcome"] \
        == "connected"


def test_single_tenant_app_saved_as_common_is_microsofts_50194_page(api, simulator, app):
    d = make_directory(simulator, app.redirect_uri, audience=AUDIENCE_MY_ORG)
    system = new_system()
    configure(api, system, d, account_type="common", tenant_id=d.tenant_id)  # the admin picked the wrong type

    _, page = _microsoft_page(api, simulator, authorize(api, system, "user", "u1"), d.staff)

    assert page.code == 50194


def test_single_tenant_signs_in_at_the_tenant_where_outsiders_get_50020(api, simulator, app):
    d = make_directory(simulator, app.redirect_uri, audience=AUDIENCE_MY_ORG)
    system = new_system()
    configure(api, system, d, account_type="single_tenant", tenant_id=d.tenant_id)
    sign_in_info = api.get(f"/api/systems/{system}/integration").json()["sign_in"]
    assert sign_in_info == {"authority": f"{simulator.url}/{d.tenant_id}", "accounts": ["work_or_school"],
                            "description": sign_in_info["description"]}

    auth_uri, page = _microsoft_page(api, simulator, authorize(api, system, "user", "u1"), d.personal)

    assert urlsplit(auth_uri).path == f"/{d.tenant_id}/oauth2/v2.0/authorize"
    assert page.code == 50020
    assert query_of(follow_sign_in(api, simulator, authorize(api, system, "user", "u1"), d.staff))["outcome"] \
        == "connected"


@pytest.mark.parametrize(("account", "hint"), [("personal", "consumers"), ("staff", "organizations")])
def test_reauthorizing_on_common_sends_the_domain_hint_of_the_connected_account(api, simulator, directory, system,
                                                                                account, hint):
    address = getattr(directory, account)
    connect(api, simulator, system, "user", "u1", address)
    session = http_session(simulator.ca_path)

    auth_uri = session.get(authorize(api, system, "user", "u1"), allow_redirects=False).headers["Location"]

    sent = dict(parse_qsl(urlsplit(auth_uri).query))
    assert (sent["domain_hint"], sent["login_hint"]) == (hint, address)
    picker = session.get(auth_uri).text
    assert f'data-account="{address}"' in picker
    other = directory.staff if account == "personal" else directory.personal
    assert f'data-account="{other}"' not in picker


# --- sign-in bound to the expected account -----------------------------------------------------------------------


def _token_rows(storage_connection_string, app, system):
    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        app.env["TABLE_PREFIX"] + "tokencaches")
    return list(table.query_entities("PartitionKey eq @s", parameters={"s": system}))


def test_expected_account_connects_when_it_signs_in_whatever_the_case(api, simulator, directory, system):
    start = authorize(api, system, "user", "u1", expected_account=directory.staff.upper())

    landing = query_of(follow_sign_in(api, simulator, start, directory.staff))

    assert (landing["outcome"], landing["account"]) == ("connected", directory.staff)
    assert "expected_account" not in landing


def test_another_account_than_expected_is_wrong_account_and_nothing_is_kept(api, simulator, directory, system, app,
                                                                            storage_connection_string):
    start = authorize(api, system, "user", "u1", expected_account=directory.staff)

    landing = query_of(follow_sign_in(api, simulator, start, directory.other_staff))

    assert landing["outcome"] == "wrong_account"
    assert (landing["account"], landing["expected_account"]) == (directory.other_staff, directory.staff)
    assert api.get(f"/api/systems/{system}/connections/user/u1").status_code == 404
    assert _token_rows(storage_connection_string, app, system) == []


def test_wrong_account_leaves_an_existing_connection_as_it_was(api, simulator, directory, system):
    connect(api, simulator, system, "user", "u1", directory.staff)
    calendar = api.get(f"/api/systems/{system}/connections/user/u1/calendars").json()["calendars"][0]
    api.patch(f"/api/systems/{system}/connections/user/u1", json={"sync_calendar_id": calendar["id"]})
    before = api.get(f"/api/systems/{system}/connections/user/u1").json()

    landing = query_of(follow_sign_in(api, simulator, authorize(api, system, "user", "u1",
                                                                expected_account=directory.staff),
                                      directory.other_staff))

    assert landing["outcome"] == "wrong_account"
    assert api.get(f"/api/systems/{system}/connections/user/u1").json() == before
    assert api.get(f"/api/systems/{system}/connections/user/u1/calendars").status_code == 200


def test_reauthorizing_with_another_account_is_refused_unless_replacing(api, simulator, directory, system):
    """A connection is bound to its Microsoft account (object ID): another person's sign-in must not quietly
    move a user's shifts or a room's bookings into a different mailbox."""
    connect(api, simulator, system, "user", "u1", directory.staff)
    before = api.get(f"/api/systems/{system}/connections/user/u1").json()

    landing = query_of(follow_sign_in(api, simulator, authorize(api, system, "user", "u1"), directory.other_staff))

    assert landing["outcome"] == "wrong_account"
    assert (landing["account"], landing["expected_account"]) == (directory.other_staff, directory.staff)
    assert api.get(f"/api/systems/{system}/connections/user/u1").json() == before
    replaced = query_of(follow_sign_in(api, simulator, authorize(api, system, "user", "u1", replace_account=True),
                                       directory.other_staff))
    assert replaced["outcome"] == "connected"
    assert api.get(f"/api/systems/{system}/connections/user/u1").json()["account"]["username"] \
        == directory.other_staff


def test_return_url_keeps_its_own_parameters_but_not_ours(api, simulator, directory, system):
    return_url = (f"{RETURN_ORIGIN}/admin/outlook?tab=sync&outcome=connected&kind=space&id=x&microsoft_code=AADSTS1"
                  "&account=mallory%40evil.example&expected_account=a%40b.c&note=a%20b")
    start = authorize(api, system, "user", "u1", return_url=return_url, expected_account=directory.staff)

    landing = follow_sign_in(api, simulator, start, directory.other_staff)

    params = parse_qs(urlsplit(landing).query)
    assert params == {"tab": ["sync"], "note": ["a b"], "outcome": ["wrong_account"], "kind": ["user"], "id": ["u1"],
                      "account": [directory.other_staff], "expected_account": [directory.staff]}
    assert "note=a%20b" in landing  # the host's own parameters stay as the host wrote them


@pytest.mark.parametrize(("body", "field"), [
    ({"expected_account": "not an account"}, "expected_account"),
    ({"expected_account": "marge@example.org", "login_hint": "ned@example.org"}, "login_hint"),
    ({"replace_account": "yes"}, "replace_account"),
])
def test_bad_binding_fields_are_a_400_naming_the_field(api, system, body, field):
    response = api.post(f"/api/systems/{system}/connections/user/u1/authorize", json={"return_url": RETURN_URL,
                                                                                       **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


def test_landing_page_names_both_accounts_of_a_wrong_account(app):
    session = http_session("/dev/null")
    query = urlencode({"outcome": "wrong_account", "account": "ned@lib.test", "expected_account": "marge@lib.test"})
    page = session.get(f"{app.url}/api/oauth/result?{query}", timeout=10)
    assert page.status_code == 400
    assert "You signed in as ned@lib.test, but this connection is for marge@lib.test" in page.text
    forged = urlencode({"outcome": "wrong_account", "account": "<b>call 555</b>", "expected_account": "x@y.z"})
    page = session.get(f"{app.url}/api/oauth/result?{forged}", timeout=10)
    assert "call 555" not in page.text and "different Microsoft account" in page.text


def test_disabled_integration_refuses_to_start_and_to_finish(api, simulator, directory, system):
    start = authorize(api, system, "user", "u1")
    configure(api, system, directory, enabled=False)
    landing = follow_sign_in(api, simulator, start, directory.staff)
    assert query_of(landing)["outcome"] == "integration_disabled"
    refused = api.post(f"/api/systems/{system}/connections/user/u2/authorize", json={"return_url": RETURN_URL})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "integration_disabled"


def test_container_space_is_refused(api, system):
    response = api.post(f"/api/systems/{system}/connections/space/hall/authorize",
                        json={"return_url": RETURN_URL, "space_type": "container_space_with_seats"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "space_cannot_sync"


def test_return_url_on_a_foreign_origin_is_refused(api, system):
    response = api.post(f"/api/systems/{system}/connections/user/u1/authorize",
                        json={"return_url": "https://evil.example.com/steal"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "return_url_not_allowed"


def test_authorize_needs_the_function_key(app, system):
    response = app.client(key=None).post(f"/api/systems/{system}/connections/user/u1/authorize",
                                         json={"return_url": RETURN_URL})
    assert response.status_code == 401


def test_unconfigured_system_cannot_authorize(api):
    response = api.post(f"/api/systems/{new_system()}/connections/user/u1/authorize", json={"return_url": RETURN_URL})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "integration_not_configured"


# --- attacks on the callback ----------------------------------------------------------------------------------


def _signed_in_params(api, simulator, system, subject, account):
    start = http_session(simulator.ca_path).get(authorize(api, system, "user", subject), allow_redirects=False)
    return sign_in(start.headers["Location"], account, ca_path=simulator.ca_path)


def _callback(api, params):
    return post_callback(api, params)


def test_query_string_responses_are_accepted_too(api, simulator, directory, system):
    params = _signed_in_params(api, simulator, system, "u1", directory.staff)
    response = api.session.get(f"{api.base}/api/oauth/callback?{urlencode(params)}", allow_redirects=False,
                               timeout=30)
    assert query_of(response.headers["Location"])["outcome"] == "connected"


def test_forged_state_gets_a_page_not_a_redirect(api):
    response = _callback(api, {"code": "whatever", "state": "forged-state"})
    assert response.status_code == 400
    assert "text/html" in response.headers["Content-Type"]
    assert 'id="outcome">flow_invalid<' in response.text.replace("'", '"')
    assert "Location" not in response.headers


def test_replayed_state_works_once(api, simulator, directory, system):
    params = _signed_in_params(api, simulator, system, "u1", directory.staff)
    first = _callback(api, params)
    assert query_of(first.headers["Location"])["outcome"] == "connected"
    replay = _callback(api, params)
    assert replay.status_code == 400 and "flow_invalid" in replay.text


def test_expired_flow(api, simulator, directory, system, storage_connection_string, app):
    params = _signed_in_params(api, simulator, system, "u1", directory.staff)
    table = TableServiceClient.from_connection_string(storage_connection_string).get_table_client(
        app.env["TABLE_PREFIX"] + "pendingflows")
    for row in table.query_entities("system eq @s", parameters={"s": system}):
        from datetime import UTC, datetime
        row["expires_at"] = datetime(2020, 1, 1, tzinfo=UTC)
        table.update_entity(row)
    response = _callback(api, params)
    assert query_of(response.headers["Location"])["outcome"] == "flow_expired"
    assert api.get(f"/api/systems/{system}/connections/user/u1").status_code == 404


def test_state_from_another_system_cannot_carry_its_code(api, simulator, app):
    a, b = make_directory(simulator, app.redirect_uri), make_directory(simulator, app.redirect_uri)
    system_a, system_b = new_system(), new_system()
    configure(api, system_a, a)
    configure(api, system_b, b)
    params_a = _signed_in_params(api, simulator, system_a, "victim", a.staff)
    params_b = _signed_in_params(api, simulator, system_b, "attacker", b.staff)
    mixed = {"code": params_b["code"], "state": params_a["state"]}
    response = _callback(api, mixed)
    outcome = query_of(response.headers["Location"])
    assert outcome["outcome"] == "authorization_failed"
    assert api.get(f"/api/systems/{system_a}/connections/user/victim").status_code == 404
    # B's own flow is untouched and still completes.
    assert query_of(_callback(api, params_b).headers["Location"])["outcome"] == "connected"


def test_callback_ignores_a_return_url_in_the_query(api, simulator, directory, system):
    params = _signed_in_params(api, simulator, system, "u1", directory.staff)
    params["return_url"] = "https://evil.example.com/"
    response = _callback(api, params)
    location = response.headers["Location"]
    assert urlsplit(location).netloc == "booking.example.edu"
    assert dict(parse_qsl(urlsplit(location).query))["outcome"] == "connected"


def test_start_with_unknown_state_shows_a_page(app):
    session = http_session("/dev/null")
    response = session.get(f"{app.url}/api/oauth/start?state=nope", allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "flow_invalid" in response.text
