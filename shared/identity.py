"""The Microsoft identity platform through `msal`: authorities, scopes, credential checks, the auth code flow,
silent token acquisition, and app-only (client credentials) tokens for one system's app registration.

MSAL application objects are cheap but each would fetch the authority's OpenID configuration; a process-wide
`http_cache` shares that across them. All HTTP goes through one `requests.Session` whose trust is set on purpose
(`trust_env` off, so a machine-wide `REQUESTS_CA_BUNDLE` cannot silently replace the configured CA bundle).

App-only tokens come from one MSAL application per system, built once per process with an in-memory token cache:
client credentials give no refresh token, so nothing is persisted, and MSAL answers from that cache until the
token is near its expiry. Client credentials need a specific directory: `/common` and `/organizations` name no
tenant to issue an app token for ("tenant: the directory tenant the application plans to operate against, in GUID
or domain-name format", https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import warnings
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from shared import aadsts
from shared.errors import DependencyUnavailable, DomainError
from shared.models import Integration
from shared.settings import Settings

log = logging.getLogger(__name__)
# MSAL's DEBUG output includes authorization codes and PKCE verifiers (found by tests/e2e/test_leak_scan.py):
# never let it through, whatever level the host configures.
logging.getLogger("msal").setLevel(logging.INFO)

BASE_SCOPES = ("User.Read", "Calendars.ReadWrite")
ROOM_SCOPES = (*BASE_SCOPES, "Calendars.ReadWrite.Shared")
PLACE_SCOPES = ("Place.Read.All",)  # room discovery through a signed-in account; needs admin consent
# Application permissions that open every mailbox of a tenant whatever an Exchange RBAC scope says (grants are
# additive: https://learn.microsoft.com/exchange/permissions-exo/application-rbac).
TENANT_WIDE_MAILBOX_ROLES = frozenset({"Calendars.Read", "Calendars.ReadBasic.All", "Calendars.ReadWrite",
                                       "Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All"})


class CredentialsInvalid(DomainError):
    """Microsoft refused the app registration's own credentials."""

    code = "credentials_invalid"
    status = 422


class TokenRefused(DomainError):
    """Microsoft refused a token request for a reason other than the app's credentials."""

    code = "token_refused"
    status = 502


def http_session(settings: Settings) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = settings.tls_verify
    adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class IdentityPlatform:
    def __init__(self, settings: Settings, session: requests.Session) -> None:
        self._host = settings.authority_host.rstrip("/")
        graph = urlsplit(settings.graph_base_url)
        self._resource = f"{graph.scheme}://{graph.netloc}"
        self._session = session
        self._http_cache: dict[Any, Any] = {}
        self._lock = threading.Lock()
        # App-only: one MSAL application (and its in-memory token cache) per system, rebuilt only when the
        # registration, secret version or directory changes.
        self._client_apps: dict[str, tuple[tuple[str, str, str], msal.ConfidentialClientApplication]] = {}

    # --- what to ask for ----------------------------------------------------------------------------------------

    def authority(self, integration: Integration) -> str:
        segment = integration.tenant_id if integration.account_type == "single_tenant" else integration.account_type
        return f"{self._host}/{segment}"

    def tenant_authority(self, tenant: str) -> str:
        return f"{self._host}/{tenant}"

    def scopes(self, kind: str) -> list[str]:
        """Graph's delegated scopes by short name: the v2.0 endpoint reads a scope without a resource as
        Microsoft Graph's in every cloud, and it answers with short names, so MSAL's cache finds the access token
        again (resource-qualified requests missed it and refreshed, rotating the refresh token, on every call).
        MSAL adds openid, profile and offline_access itself and refuses them if passed."""
        return list(ROOM_SCOPES if kind == "space" else BASE_SCOPES)

    def sign_in_scopes(self, integration: Integration, kind: str) -> list[str]:
        """What a sign-in asks for: the sync scopes, and for spaces `Place.Read.All` when the integration turned
        delegated room discovery on. Only the sign-in asks for it: silent requests for sync keep to `scopes`, so
        a tenant that never consented to it does not turn every refresh into a consent error."""
        scopes = self.scopes(kind)
        if kind == "space" and integration.room_discovery_delegated:
            scopes.extend(PLACE_SCOPES)
        return scopes

    @property
    def app_scope(self) -> str:
        """Client credentials ask for the resource's `.default`: every application permission granted to it."""
        return f"{self._resource}/.default"

    def app(
        self, integration: Integration, secret: str, cache: msal.SerializableTokenCache | None = None,
        *, authority: str | None = None,
    ) -> msal.ConfidentialClientApplication:
        try:
            return msal.ConfidentialClientApplication(
                integration.client_id,
                client_credential=secret,
                authority=authority or self.authority(integration),
                token_cache=cache,
                http_client=self._session,
                http_cache=self._http_cache,
                instance_discovery=False,
                timeout=15,
            )
        except ValueError as exc:  # MSAL raises ValueError when discovery fails (unknown tenant, bad host)
            raise CredentialsInvalid(f"Microsoft did not accept the authority: {exc}",
                                     microsoft_code="AADSTS90002") from None
        except requests.RequestException:
            raise DependencyUnavailable("The Microsoft identity platform is unreachable") from None

    # --- credentials ----------------------------------------------------------------------------------------------

    def check_credentials(self, integration: Integration, secret: str) -> None:
        """Prove the application ID and secret work, or raise `CredentialsInvalid` with Microsoft's code.

        With a tenant ID (always for single-tenant apps) this is a client-credentials request to that tenant.
        Multi-tenant registrations without one cannot get an app-only token from /common; there an authorization
        code redemption with a code that cannot exist is sent instead: Microsoft authenticates the client first,
        so a bad ID or secret answers `invalid_client`/`unauthorized_client`, good ones `invalid_grant`.
        """
        try:
            if integration.tenant_id:
                app = self.app(integration, secret, authority=f"{self._host}/{integration.tenant_id}")
                result = app.acquire_token_for_client(scopes=[f"{self._resource}/.default"])
                if "access_token" in result:
                    return
            else:
                app = self.app(integration, secret)
                with warnings.catch_warnings():  # MSAL nudges towards the flow API; a probe has no flow
                    warnings.simplefilter("ignore", DeprecationWarning)
                    result = app.acquire_token_by_authorization_code(
                        "credential-check-" + secrets.token_urlsafe(16), scopes=self.scopes("user"),
                        redirect_uri="https://localhost/credential-check")
                if result.get("error") == "invalid_grant":
                    return
        except requests.RequestException:
            raise DependencyUnavailable("The Microsoft identity platform is unreachable") from None
        code = aadsts.code_of(result)
        if result.get("error") in ("invalid_client", "unauthorized_client") or aadsts.is_credential_problem(code):
            raise CredentialsInvalid(
                "App ID or Secret is incorrect. " + aadsts.describe(code, "Microsoft refused the credentials"),
                microsoft_code=code)
        raise TokenRefused(aadsts.describe(code, f"Microsoft answered {result.get('error')}"), microsoft_code=code)

    # --- the auth code flow ---------------------------------------------------------------------------------------

    def start_flow(
        self, integration: Integration, secret: str, kind: str, redirect_uri: str, login_hint: str | None = None,
        domain_hint: str | None = None,
    ) -> dict[str, Any]:
        app = self.app(integration, secret)
        try:
            return app.initiate_auth_code_flow(
                self.sign_in_scopes(integration, kind), redirect_uri=redirect_uri, login_hint=login_hint,
                domain_hint=domain_hint,
                # form_post keeps the code out of URLs (browser history, proxy and access logs): RFC 9700 4.3.1
                prompt="select_account", response_mode="form_post")
        except requests.RequestException:
            raise DependencyUnavailable("The Microsoft identity platform is unreachable") from None

    def redeem(
        self, integration: Integration, secret: str, flow: dict[str, Any], auth_response: dict[str, str],
        cache: msal.SerializableTokenCache,
    ) -> dict[str, Any]:
        """Exchange the code; MSAL checks state and the ID token's nonce. Returns MSAL's result (tokens land in
        `cache`) or an error dict."""
        app = self.app(integration, secret, cache)
        try:
            return app.acquire_token_by_auth_code_flow(flow, auth_response)
        except ValueError:
            return {"error": "state_mismatch", "error_description": "The response did not match the flow"}
        except requests.RequestException:
            raise DependencyUnavailable("The Microsoft identity platform is unreachable") from None

    def silent(
        self, integration: Integration, secret: str, cache: msal.SerializableTokenCache, home_account_id: str,
        kind: str, *, force_refresh: bool = False, scopes: tuple[str, ...] | None = None,
    ) -> dict[str, Any] | None:
        """An access token from the cache, refreshing when needed (or forced). None when the account is gone
        from the cache; MSAL's error dict when Microsoft refused. `scopes` asks for other scopes than the
        connection's sync scopes (the refresh token serves any scope consented for the app)."""
        app = self.app(integration, secret, cache)
        account = next((a for a in app.get_accounts() if a.get("home_account_id") == home_account_id), None)
        if account is None:
            return None
        try:
            return app.acquire_token_silent_with_error(list(scopes) if scopes else self.scopes(kind), account,
                                                       force_refresh=force_refresh)
        except requests.RequestException:
            raise DependencyUnavailable("The Microsoft identity platform is unreachable") from None

    # --- app-only (client credentials) ----------------------------------------------------------------------------

    def client_token(self, integration: Integration, secret: str, *, force_refresh: bool = False) -> dict[str, Any]:
        """An app-only token for the integration's app-access directory: MSAL's result (from its in-memory cache
        while the token lasts) or its error dict. MSAL refuses `force_refresh` for this flow, so a forced refresh
        (Graph answered 401) drops the cached access tokens first."""
        tenant = integration.app_tenant
        if tenant is None:
            raise ValueError("app access is not enabled for this integration")
        key = (integration.client_id, tenant, integration.secret_version)
        with self._lock:
            held = self._client_apps.get(integration.system)
        if held is None or held[0] != key:
            built = self.app(integration, secret, msal.TokenCache(), authority=self.tenant_authority(tenant))
            with self._lock:
                held = self._client_apps.get(integration.system)
                if held is None or held[0] != key:
                    held = self._client_apps[integration.system] = (key, built)
        client = held[1]
        if force_refresh:
            cache = client.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(entry)
        try:
            return client.acquire_token_for_client(scopes=[self.app_scope])
        except requests.RequestException:
            raise DependencyUnavailable("The Microsoft identity platform is unreachable") from None

    def probe_app_access(self, integration: Integration, secret: str) -> dict[str, Any]:
        """One client-credentials request to the app-access directory with a fresh MSAL application (nothing
        cached from before the change being saved): MSAL's result or error dict."""
        tenant = integration.app_tenant
        if tenant is None:
            raise ValueError("app access is not enabled for this integration")
        app = self.app(integration, secret, msal.TokenCache(), authority=self.tenant_authority(tenant))
        try:
            return app.acquire_token_for_client(scopes=[self.app_scope])
        except requests.RequestException:
            raise DependencyUnavailable("The Microsoft identity platform is unreachable") from None


def token_roles(access_token: str) -> list[str]:
    """The `roles` claim of an app-only access token when it is a readable JWT (Microsoft's are; Graph asks
    clients to treat them as opaque, so this only feeds a warning), else none."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return []
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return []
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) else []
