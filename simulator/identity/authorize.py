"""`/{tenant}/oauth2/v2.0/authorize`: validate the request, let a person pick an account and consent, and send
the browser back with a code or an error.

As at Microsoft, nothing is redirected until the client and its redirect URI are known to be genuine (an
attacker-chosen URI must never receive even an error). After that, request errors, a refused consent and a tenant's
admin-approval rule travel back to the app; but an app used on an endpoint its supported account types exclude, or
an account that cannot use it here, gets Microsoft's own error page and nothing reaches the app (see
`tenants.py`), so an app can only prevent those, never report them.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping

from werkzeug import Request, Response

from simulator.directory import AppRegistration, User
from simulator.identity import errors, pages, tenants
from simulator.identity import scopes as sc
from simulator.identity.errors import AadError
from simulator.identity.issuance import client_info
from simulator.identity.state import AuthorizationCode, PendingAuthorization
from simulator.identity.tenants import Authority
from simulator.identity.web import Ctx, html_response, with_fragment, with_query

RESPONSE_MODES = ("query", "fragment", "form_post")


class _ErrorPage(Exception):
    def __init__(self, err: AadError) -> None:
        super().__init__(err.headline)
        self.err = err


def authorize_endpoint(ctx: Ctx, request: Request, segment: str) -> Response:
    try:
        if request.method == "POST" and "request_id" in request.form:
            return _continue(ctx, request.form, segment)
        params = request.args if request.method == "GET" else request.form
        return _start(ctx, params, segment)
    except _ErrorPage as page:
        ctx.count("identity.authorize.error_page")
        ctx.count(f"identity.authorize.error.{page.err.code or 'uncoded'}")
        return html_response(pages.error_page(page.err, ctx.errors), 400)


def _action(segment: str) -> str:
    return f"/{segment}/oauth2/v2.0/authorize"


def _redirect(uri: str, mode: str, params: dict[str, str]) -> Response:
    if mode == "form_post":
        return html_response(pages.form_post(uri, params))
    target = with_fragment(uri, params) if mode == "fragment" else with_query(uri, params)
    response = Response(status=302)
    response.headers["Location"] = target
    response.headers["Cache-Control"] = "no-store, no-cache"
    return response


def _redirect_error(ctx: Ctx, uri: str, mode: str, state: str | None, err: AadError) -> Response:
    ctx.count(f"identity.authorize.error.{err.code or 'uncoded'}")
    return _redirect(uri, mode, ctx.errors.redirect_params(err, state))


def _trusted_client(ctx: Ctx, params: Mapping[str, str], segment: str) -> tuple[Authority, AppRegistration, str]:
    """The checks whose failure must not redirect: tenant, client, redirect URI."""
    authority = tenants.resolve(ctx.sim.directory, segment)
    if authority is None:
        raise _ErrorPage(errors.tenant_not_found(segment))
    client_id = params.get("client_id", "")
    if not client_id:
        raise _ErrorPage(errors.missing_parameter("client_id"))
    app = ctx.sim.directory.apps.get(client_id)
    if app is None or not tenants.app_visible_in(authority, app):
        raise _ErrorPage(errors.app_not_found(client_id, authority.directory_name))
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        raise _ErrorPage(errors.missing_parameter("redirect_uri"))
    if redirect_uri not in app.redirect_uris:
        raise _ErrorPage(errors.redirect_uri_mismatch(redirect_uri, client_id))
    return authority, app, redirect_uri


def _start(ctx: Ctx, params: Mapping[str, str], segment: str) -> Response:
    authority, app, redirect_uri = _trusted_client(ctx, params, segment)
    mode = params.get("response_mode") or "query"
    mode = mode if mode in RESPONSE_MODES else "query"
    state = params.get("state")
    response_type = params.get("response_type", "")
    scope_list = sc.split(params.get("scope"))
    wrong_endpoint = tenants.check_app(authority, app)
    if wrong_endpoint is not None:
        raise _ErrorPage(wrong_endpoint)
    refusal = (
        (errors.missing_parameter("response_type") if not response_type else None)
        or (errors.unsupported_response_type(response_type) if response_type != "code" else None)
        or (errors.missing_parameter("scope") if not scope_list else None)
        or (errors.pkce_required()
            if not params.get("code_challenge") or params.get("code_challenge_method") != "S256" else None)
        or (errors.login_required() if params.get("prompt") == "none" else None)
    )
    if refusal is not None:
        return _redirect_error(ctx, redirect_uri, mode, state, refusal)
    pending = PendingAuthorization(
        id=secrets.token_urlsafe(24),
        tenant_segment=segment,
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        response_mode=mode,
        scopes=tuple(scope_list),
        state=state,
        nonce=params.get("nonce"),
        code_challenge=params["code_challenge"],
        login_hint=params.get("login_hint"),
        domain_hint=params.get("domain_hint"),
        prompt=params.get("prompt"),
        want_client_info=params.get("client_info") == "1",
        created_at=ctx.now,
    )
    with ctx.state.lock:
        ctx.state.pending[pending.id] = pending
    ctx.state.note_issued(ctx.now)
    ctx.count("identity.authorize.started")
    candidates = tenants.sign_in_candidates(ctx.sim.directory, authority, pending.domain_hint)
    hinted = next(
        (u for u in candidates if pending.login_hint and u.address.lower() == pending.login_hint.lower()), None
    )
    if hinted is not None and pending.prompt != "select_account":
        return _after_pick(ctx, authority, app, pending, hinted)
    return html_response(pages.account_picker(_action(segment), pending.id, app.display_name, candidates,
                                              pending.login_hint))


def _continue(ctx: Ctx, form: Mapping[str, str], segment: str) -> Response:
    with ctx.state.lock:
        pending = ctx.state.pending.get(form.get("request_id", ""))
    if (
        pending is None
        or pending.tenant_segment != segment
        or ctx.now - pending.created_at > ctx.state.settings.pending_lifetime
    ):
        raise _ErrorPage(AadError(
            None, "invalid_request",
            "This sign-in request has expired or was already completed. Start again from the application.",
        ))
    authority, app, _ = _trusted_client(
        ctx, {"client_id": pending.client_id, "redirect_uri": pending.redirect_uri}, segment
    )
    if pending.user_id is None:
        address = form.get("account", "").strip()
        candidates = tenants.sign_in_candidates(ctx.sim.directory, authority, pending.domain_hint)
        user = next((u for u in candidates if u.address.lower() == address.lower()), None)
        if user is None and address:  # typed under "Use another account": a hint narrows the list, no more
            user = next((u for u in tenants.sign_in_candidates(ctx.sim.directory, authority)
                         if u.address.lower() == address.lower()), None)
            typed = ctx.sim.directory.find_user(address)
            refusal = tenants.check_typed(ctx.sim.directory, authority, typed) if typed and not user else None
            if refusal is not None:
                _forget(ctx, pending)
                raise _ErrorPage(refusal)
        if user is None:
            return html_response(pages.account_picker(
                _action(segment), pending.id, app.display_name, candidates, None,
                notice=f"We couldn't find an account with that username: {address or '(none)'}.",
            ), 400)
        return _after_pick(ctx, authority, app, pending, user)
    user = ctx.sim.directory.users.get(pending.user_id)
    action = form.get("action")
    if user is None or action not in ("accept", "deny"):
        raise _ErrorPage(AadError(None, "invalid_request", "Choose Accept or Cancel."))
    with ctx.state.lock:
        if ctx.state.pending.pop(pending.id, None) is None:  # a double submit: only the first one counts
            raise _ErrorPage(AadError(None, "invalid_request", "This sign-in request was already completed."))
    if action == "deny":
        ctx.count("identity.authorize.denied")
        return _redirect_error(ctx, pending.redirect_uri, pending.response_mode, pending.state,
                               errors.user_declined())
    ctx.state.record_consent(user.id, app.client_id, set(sc.permissions(pending.scopes)))
    # A user's consent creates the app's service principal in the user's tenant, if there was none:
    # https://learn.microsoft.com/entra/identity/enterprise-apps/grant-consent-single-user
    ctx.sim.directory.add_service_principal(user.tenant_id, app.client_id)
    return _issue_code(ctx, pending, user)


def _forget(ctx: Ctx, pending: PendingAuthorization) -> None:
    with ctx.state.lock:
        ctx.state.pending.pop(pending.id, None)


def _after_pick(ctx: Ctx, authority: Authority, app: AppRegistration, pending: PendingAuthorization,
                user: User) -> Response:
    wrong_account = tenants.check_account(ctx.sim.directory, authority, app, user)
    if wrong_account is not None:
        _forget(ctx, pending)
        raise _ErrorPage(wrong_account)
    refusal = _admin_gate(ctx, app, user, pending)
    if refusal is not None:
        _forget(ctx, pending)
        return _redirect_error(ctx, pending.redirect_uri, pending.response_mode, pending.state, refusal)
    if not _needs_consent(ctx, app, user, pending):
        _forget(ctx, pending)
        return _issue_code(ctx, pending, user)
    with ctx.state.lock:
        pending.user_id = user.id
    return html_response(pages.consent_page(_action(pending.tenant_segment), pending.id, app.display_name, user,
                                            sc.permissions(pending.scopes)))


def _missing_permissions(ctx: Ctx, app: AppRegistration, user: User, pending: PendingAuthorization) -> set[str]:
    tenant = ctx.sim.directory.tenants.get(user.tenant_id)
    if tenant is not None and app.client_id in tenant.admin_consented:
        return set()
    granted = {g.lower() for g in ctx.state.consented_scopes(user.id, app.client_id)}
    return {p for p in sc.permissions(pending.scopes) if p.lower() not in granted}


def _needs_consent(ctx: Ctx, app: AppRegistration, user: User, pending: PendingAuthorization) -> bool:
    return pending.prompt == "consent" or bool(_missing_permissions(ctx, app, user, pending))


def _admin_gate(ctx: Ctx, app: AppRegistration, user: User, pending: PendingAuthorization) -> AadError | None:
    """A tenant that forbids user consent refuses only when consent is actually needed; a permission only an
    administrator may grant is refused whatever the tenant allows users (the simulator's users are not admins)."""
    tenant = ctx.sim.directory.tenants.get(user.tenant_id)
    if tenant is None or tenant.personal:
        return None
    missing = _missing_permissions(ctx, app, user, pending)
    if not missing:
        return None
    if sc.admin_only(missing):
        return errors.admin_approval_required(app.display_name)
    if not tenant.admin_consent_required:
        return None
    if tenant.admin_consent_required == "90094":
        return errors.admin_approval_required(app.display_name)
    return errors.consent_not_granted(app.client_id, app.display_name, on_token_endpoint=False)


def _issue_code(ctx: Ctx, pending: PendingAuthorization, user: User) -> Response:
    code = AuthorizationCode(
        code="sim-code." + secrets.token_urlsafe(40),
        client_id=pending.client_id,
        redirect_uri=pending.redirect_uri,
        user_id=user.id,
        tenant_id=user.tenant_id,
        scopes=sc.permissions(pending.scopes) | sc.oidc(pending.scopes),
        nonce=pending.nonce,
        code_challenge=pending.code_challenge,
        issued_at=ctx.now,
        auth_time=ctx.now,
    )
    with ctx.state.lock:
        ctx.state.codes[code.code] = code
    ctx.state.note_issued(ctx.now)
    ctx.count("identity.authorize.code_issued")
    params = {"code": code.code}
    if pending.want_client_info:
        params["client_info"] = client_info(user)
    if pending.state is not None:
        params["state"] = pending.state
    params["session_state"] = str(uuid.uuid4())
    return _redirect(pending.redirect_uri, pending.response_mode, params)
