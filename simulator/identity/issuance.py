"""Successful token responses: the access token registered for Graph, the rotating refresh token, the
ID token and `client_info` that MSAL builds its account (home_account_id = uid.utid) from."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from simulator.directory import AppRegistration, User
from simulator.identity import scopes as sc
from simulator.identity.keys import b64url
from simulator.identity.web import Ctx

ID_TOKEN_LIFETIME = 3600


def issuer(base_url: str, tenant_id: str) -> str:
    return f"{base_url}/{tenant_id}/v2.0"


def client_info(user: User) -> str:
    return b64url(json.dumps({"uid": user.id, "utid": user.tenant_id}, separators=(",", ":")).encode())


def _pairwise_sub(user: User, client_id: str) -> str:
    """Microsoft's `sub` is unique per user and app, so apps cannot correlate users across each other."""
    return b64url(hashlib.sha256(f"{user.id}|{client_id}".encode()).digest())


def id_token(ctx: Ctx, app: AppRegistration, user: User, granted: frozenset[str], nonce: str | None,
             auth_time: float) -> str:
    now = int(ctx.now)
    claims: dict[str, Any] = {
        "aud": app.client_id,
        "iss": issuer(ctx.base_url, user.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME,
        "auth_time": int(auth_time),
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.address,
        "sub": _pairwise_sub(user, app.client_id),
        "tid": user.tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if "email" in sc.oidc(granted):
        claims["email"] = user.address
    return ctx.state.key.sign(claims)


def user_token_response(
    ctx: Ctx,
    *,
    app: AppRegistration,
    user: User,
    granted: frozenset[str],
    nonce: str | None,
    auth_time: float,
    family_id: str | None,
    want_client_info: bool,
    refresh_scopes: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Tokens for a signed-in user. `granted` holds permissions (short names) and OIDC scopes; a refresh
    token is issued only when `offline_access` was granted, an ID token only for `openid`, as Microsoft does."""
    settings = ctx.state.settings
    permissions = sc.permissions(granted)
    oidc = sc.oidc(granted)
    access = ctx.sim.tokens.issue(
        client_id=app.client_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        scopes=permissions,
        lifetime=settings.access_token_lifetime,
    )
    body: dict[str, Any] = {
        "token_type": "Bearer",  # nosec B105 - the OAuth token type, not a secret
        "scope": " ".join([*sorted(permissions), *(s for s in ("openid", "profile", "email") if s in oidc)]),
        "expires_in": settings.access_token_lifetime,
        "ext_expires_in": settings.access_token_lifetime,
        "access_token": access.token,
    }
    if "offline_access" in oidc:
        refresh = ctx.state.issue_refresh_token(
            family_id=family_id, client_id=app.client_id, user_id=user.id, tenant_id=user.tenant_id,
            scopes=refresh_scopes if refresh_scopes is not None else granted, now=ctx.now, auth_time=auth_time,
        )
        body["refresh_token"] = refresh.token
    if "openid" in oidc:
        body["id_token"] = id_token(ctx, app, user, granted, nonce, auth_time)
    if want_client_info:
        body["client_info"] = client_info(user)
    return body


def app_token_response(ctx: Ctx, app: AppRegistration, tenant_id: str, roles: frozenset[str]) -> dict[str, Any]:
    """An app-only token: no user, no refresh or ID token; its permissions are the roles granted in `tenant_id`,
    fixed when it is issued (a revoked role lives on in tokens already issued until they expire, as a JWT's
    `roles` claim does)."""
    lifetime = ctx.state.settings.access_token_lifetime
    access = ctx.sim.tokens.issue(
        client_id=app.client_id,
        tenant_id=tenant_id,
        user_id=None,
        scopes=roles,
        lifetime=lifetime,
    )
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access.token}  # nosec B105 - the OAuth token type, not a secret
