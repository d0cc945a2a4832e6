"""OpenID Connect discovery and the signing keys, per tenant path segment.

This is the only call MSAL makes before its first token request (with instance discovery off), and MSAL
takes the authorization and token endpoints from it, so they must point back at this server.
"""

from __future__ import annotations

from typing import Any

from werkzeug import Response

from simulator.directory import CONSUMERS_TENANT_ID
from simulator.identity import errors, tenants
from simulator.identity.issuance import issuer
from simulator.identity.web import Ctx, json_response

GRAPH_HOST = "graph.microsoft.com"


def _invalid_tenant(ctx: Ctx, segment: str) -> Response:
    err = errors.tenant_not_found(segment)
    err.error = "invalid_tenant"
    return json_response(ctx.errors.token_body(err), 400)


def _issuer_for(ctx: Ctx, authority: tenants.Authority) -> str:
    """`{tenantid}` stays a template on the multi-tenant endpoints, as Microsoft publishes it: the real
    issuer is the signed-in user's tenant, known only from the token."""
    if authority.kind in ("common", "organizations"):
        return issuer(ctx.base_url, "{tenantid}")
    if authority.kind == "consumers":
        return issuer(ctx.base_url, CONSUMERS_TENANT_ID)
    assert authority.tenant is not None  # nosec B101 - an invariant the caller guarantees
    return issuer(ctx.base_url, authority.tenant.id)


def openid_configuration(ctx: Ctx, segment: str) -> Response:
    authority = tenants.resolve(ctx.sim.directory, segment)
    if authority is None:
        return _invalid_tenant(ctx, segment)
    base = f"{ctx.base_url}/{authority.path_segment}"
    document: dict[str, Any] = {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": _issuer_for(ctx, authority),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"https://{GRAPH_HOST}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name",
            "tid", "ver", "at_hash", "c_hash", "email",
        ],
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": GRAPH_HOST,
        "rbac_url": "https://pas.windows.net",
    }
    return json_response(document)


def jwks(ctx: Ctx, segment: str) -> Response:
    authority = tenants.resolve(ctx.sim.directory, segment)
    if authority is None:
        return _invalid_tenant(ctx, segment)
    return json_response({"keys": [ctx.state.key.jwk(_issuer_for(ctx, authority))]})
