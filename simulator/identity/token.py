"""`POST /{tenant}/oauth2/v2.0/token`: client authentication and the three grants the product uses.

The checks run in the order Microsoft's answers imply (the app must exist before its secret is judged; a code
is looked up before PKCE is checked), because clients map the first failure to an outcome.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from werkzeug import Request, Response
from werkzeug.datastructures import MultiDict

from simulator.directory import AppRegistration, User
from simulator.identity import errors, tenants
from simulator.identity import scopes as sc
from simulator.identity.errors import AadError
from simulator.identity.issuance import app_token_response, user_token_response
from simulator.identity.tenants import Authority
from simulator.identity.web import Ctx, json_response

Form = MultiDict[str, str]
KNOWN_GRANTS = ("authorization_code", "refresh_token", "client_credentials")


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).rstrip(b"=").decode()


def token_endpoint(ctx: Ctx, request: Request, segment: str) -> Response:
    form: Form = request.form
    grant = form.get("grant_type", "")
    label = grant if grant in KNOWN_GRANTS else "other"
    try:
        authority = tenants.resolve(ctx.sim.directory, segment)
        if authority is None:
            raise errors.tenant_not_found(segment)
        if not grant:
            raise errors.missing_parameter("grant_type")
        if grant not in KNOWN_GRANTS:
            raise errors.unsupported_grant_type(grant)
        app = authenticate_client(ctx, request, authority)
        body = _GRANTS[grant](ctx, form, authority, app)
    except AadError as err:
        ctx.count(f"identity.token.{label}.error")
        ctx.count(f"identity.token.{label}.error.{err.code or 'uncoded'}")
        return json_response(ctx.errors.token_body(err), err.status, no_store=True)
    ctx.count(f"identity.token.{label}.ok")
    return json_response(body, 200, no_store=True)


def _presented_credentials(request: Request) -> tuple[str | None, str | None]:
    """client_secret_basic (URL-encoded inside Basic, per RFC 6749 2.3.1) or client_secret_post."""
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return unquote_plus(auth.username), unquote_plus(auth.password or "")
    return request.form.get("client_id") or None, request.form.get("client_secret")


def authenticate_client(ctx: Ctx, request: Request, authority: Authority) -> AppRegistration:
    client_id, secret = _presented_credentials(request)
    if not client_id:
        raise errors.missing_parameter("client_id")
    app = ctx.sim.directory.apps.get(client_id)
    if app is None or not tenants.app_visible_in(authority, app):
        raise errors.app_not_found(client_id, authority.directory_name)
    refusal = tenants.check_app(authority, app)
    if refusal is not None:
        # The consumer side's refusal carries no AADSTS code; on the token endpoint the app is simply unknown there.
        raise refusal if refusal.code is not None else errors.app_not_found(client_id, authority.directory_name)
    if not secret:
        raise errors.client_secret_missing()
    matches = [s for s in app.secrets if hmac.compare_digest(s.value.encode(), secret.encode())]
    if not matches:
        raise errors.client_secret_invalid(client_id)
    if all(s.expires_at is not None and s.expires_at <= ctx.now for s in matches):
        raise errors.client_secret_expired(client_id)
    return app


def _live_user(ctx: Ctx, user_id: str) -> User:
    user = ctx.sim.directory.users.get(user_id)
    if user is None or not user.enabled:
        raise errors.user_disabled()
    return user


def _consented(ctx: Ctx, user: User, client_id: str) -> set[str] | None:
    """Permissions the user may get tokens for; None means everything (an administrator consented)."""
    tenant = ctx.sim.directory.tenants.get(user.tenant_id)
    if tenant is not None and client_id in tenant.admin_consented:
        return None
    return ctx.state.consented_scopes(user.id, client_id)


def _authorization_code(ctx: Ctx, form: Form, authority: Authority, app: AppRegistration) -> dict[str, Any]:
    code_value = form.get("code")
    if not code_value:
        raise errors.missing_parameter("code")
    redirect_uri = form.get("redirect_uri")
    if not redirect_uri:
        raise errors.missing_parameter("redirect_uri")
    state = ctx.state
    with state.lock:
        code = state.codes.get(code_value)
        if code is None:
            raise errors.grant_malformed()
        if code.client_id != app.client_id:
            raise errors.code_for_other_client()
        if code.redeemed:
            raise errors.code_already_redeemed()
        if ctx.now - code.issued_at > state.settings.code_lifetime:
            raise errors.grant_expired()
        if redirect_uri != code.redirect_uri:
            raise errors.reply_address_mismatch(redirect_uri, code.redirect_uri)
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(s256(verifier), code.code_challenge):
            raise errors.pkce_verifier_mismatch()
        user = _live_user(ctx, code.user_id)
        code.redeemed = True
    return user_token_response(
        ctx, app=app, user=user, granted=code.scopes, nonce=code.nonce, auth_time=code.auth_time,
        family_id=None, want_client_info=form.get("client_info") == "1",
    )


def _refresh_token(ctx: Ctx, form: Form, authority: Authority, app: AppRegistration) -> dict[str, Any]:
    value = form.get("refresh_token")
    if not value:
        raise errors.missing_parameter("refresh_token")
    state = ctx.state
    with state.lock:
        token = state.refresh_tokens.get(value)
        if token is None:
            raise errors.grant_malformed()
        if token.client_id != app.client_id or token.superseded:
            # Rotated out: the simulator is stricter than Entra here on purpose, so an app that loses the
            # rotated token fails in tests instead of hours later in production.
            raise errors.refresh_token_not_valid()
        if ctx.now - token.issued_at > state.settings.refresh_token_max_inactive:
            raise errors.refresh_token_inactive(_dt(token.issued_at))
        user = _live_user(ctx, token.user_id)
        valid_from = state.tokens_valid_from.get(user.id)
        if valid_from is not None and token.auth_time < valid_from:
            raise errors.grant_revoked(_dt(token.auth_time), _dt(valid_from))
        family = state.families[token.family_id]
        if family.revoked_reason is not None:
            raise errors.consent_not_granted(app.client_id, app.display_name, on_token_endpoint=True)
        requested = sc.split(form.get("scope"))
        wanted = sc.permissions(requested) or sc.permissions(token.scopes)
        consented = _consented(ctx, user, app.client_id)
        if consented is not None and not sc.covers(consented, wanted):
            raise errors.consent_not_granted(app.client_id, app.display_name, on_token_endpoint=True)
        token.superseded = True
    # The access token carries what was asked for now; the new refresh token keeps everything the old one had,
    # because Microsoft's refresh tokens are not bound to one resource or scope set.
    return user_token_response(
        ctx, app=app, user=user, granted=wanted | sc.oidc(token.scopes), nonce=None, auth_time=token.auth_time,
        family_id=token.family_id, want_client_info=form.get("client_info") == "1",
        refresh_scopes=token.scopes | wanted,
    )


def _client_credentials_grant(ctx: Ctx, form: Form, authority: Authority, app: AppRegistration) -> dict[str, Any]:
    """App-only tokens, per tenant: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
    - only on a tenant's endpoint (AADSTS50059 on /common, /organizations, /consumers);
    - `scope` is exactly one `{resource}/.default` (AADSTS1002012 otherwise);
    - the app needs a service principal in that tenant (AADSTS700016 "not found in the directory" otherwise);
    - the token's roles are the application permissions an administrator of THAT tenant granted (possibly none:
      Exchange's RBAC for Applications then decides mailbox access on its own, see simulator/rbac.py)."""
    if authority.kind != "tenant" or authority.tenant is None:
        raise errors.no_tenant_for_app_only()
    scope = form.get("scope", "").strip()
    if not scope:
        raise errors.missing_parameter("scope")
    if len(scope.split()) != 1 or not scope.lower().endswith("/.default"):
        raise errors.scope_not_default(scope)
    resource = scope[: -len("/.default")]
    if sc.short(resource + "/x") != "x":
        raise AadError(
            500011,
            "invalid_resource",
            f"The resource principal named {resource} was not found in the tenant named {authority.tenant.name}. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You might have sent your authentication request to the wrong "
            "tenant.",
        )
    tenant = authority.tenant
    directory = ctx.sim.directory
    if not directory.has_service_principal(tenant.id, app.client_id):
        raise errors.app_not_found(app.client_id, tenant.name)
    return app_token_response(ctx, app, tenant.id, directory.app_roles(tenant.id, app.client_id))


_GRANTS: dict[str, Callable[[Ctx, Form, Authority, AppRegistration], dict[str, Any]]] = {
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
    "client_credentials": _client_credentials_grant,
}
