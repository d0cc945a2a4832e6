"""Microsoft identity platform errors, in the shape and with the codes Microsoft sends.

Clients (MSAL, and the app through it) branch on `error`, `error_codes` and `suberror`, and people read
`error_description`, so each failure the simulator can produce is built here once, with the `error` value
and AADSTS code Microsoft uses for it (see the report in the project notes for the evidence behind each).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_PORTAL_NEW_KEYS_LINK = "https://aka.ms/NewClientSecret"
_GO_LINK_CERT = "https://aka.ms/certCreds"
_GO_LINK_REDIRECT = "https://aka.ms/redirectUriMismatchError"


@dataclass
class AadError(Exception):
    """One failure of the authorize or token endpoint.

    `code` is the AADSTS number; None for the few errors the Microsoft account (consumer) side reports
    without one. `error_subcode` only travels on authorize redirects (Microsoft's `error_subcode=cancel`).
    """

    code: int | None
    error: str
    message: str
    status: int = 400
    suberror: str | None = None
    error_subcode: str | None = None

    def __str__(self) -> str:
        return self.headline

    @property
    def headline(self) -> str:
        return f"AADSTS{self.code}: {self.message}" if self.code is not None else self.message


@dataclass(frozen=True)
class ErrorContext:
    """Per-request identifiers Microsoft stamps on every error (the correlation ID echoes the client's
    `client-request-id`, which is how MSAL users match a failure to their own logs)."""

    trace_id: str
    correlation_id: str
    timestamp: datetime
    base_url: str

    @staticmethod
    def new(now: datetime, base_url: str, client_request_id: str | None = None) -> ErrorContext:
        return ErrorContext(str(uuid.uuid4()), client_request_id or str(uuid.uuid4()), now, base_url.rstrip("/"))

    @property
    def stamp(self) -> str:
        return self.timestamp.strftime("%Y-%m-%d %H:%M:%SZ")

    def description(self, err: AadError) -> str:
        if err.code is None:
            return err.message
        return (
            f"{err.headline}\r\nTrace ID: {self.trace_id}\r\nCorrelation ID: {self.correlation_id}"
            f"\r\nTimestamp: {self.stamp}"
        )

    def error_uri(self, err: AadError) -> str | None:
        return f"{self.base_url}/error?code={err.code}" if err.code is not None else None

    def token_body(self, err: AadError) -> dict[str, Any]:
        """The JSON body of a failed token request, field for field as Microsoft sends it."""
        body: dict[str, Any] = {
            "error": err.error,
            "error_description": self.description(err),
            "error_codes": [err.code] if err.code is not None else [],
            "timestamp": self.stamp,
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
        }
        uri = self.error_uri(err)
        if uri:
            body["error_uri"] = uri
        if err.suberror:
            body["suberror"] = err.suberror
        return body

    def redirect_params(self, err: AadError, state: str | None) -> dict[str, str]:
        """The parameters appended to the redirect URI when the authorize endpoint reports a failure."""
        params = {"error": err.error, "error_description": self.description(err)}
        uri = self.error_uri(err)
        if uri:
            params["error_uri"] = uri
        if err.error_subcode:
            params["error_subcode"] = err.error_subcode
        if state is not None:
            params["state"] = state
        return params


# --- request shape -------------------------------------------------------------------------------------


def missing_parameter(name: str) -> AadError:
    return AadError(900144, "invalid_request", f"The request body must contain the following parameter: '{name}'.")


def tenant_not_found(segment: str) -> AadError:
    return AadError(
        90002,
        "invalid_request",
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant.",
    )


def unsupported_grant_type(grant_type: str) -> AadError:
    return AadError(
        70003,
        "unsupported_grant_type",
        f"The app requested an unsupported grant type '{grant_type}'.",
    )


def unsupported_response_type(response_type: str) -> AadError:
    return AadError(
        700054,
        "unsupported_response_type",
        f"response_type '{response_type}' is not enabled for the application.",
    )


def pkce_required() -> AadError:
    # Microsoft requires PKCE for SPA redemption; the simulator requires it (S256) for every authorization
    # request, because the product promises PKCE on every flow and a regression must fail loudly.
    return AadError(
        9002325,
        "invalid_request",
        "Proof Key for Code Exchange is required for cross-origin authorization code redemption. "
        "(The simulator requires code_challenge with code_challenge_method=S256 on every request.)",
    )


def no_tenant_for_app_only() -> AadError:
    # Client credentials on /common or /organizations (no tenant to issue the app's token in); Entra's exact text,
    # e.g. https://github.com/AzureAD/microsoft-identity-web/issues/462 and
    # https://github.com/AzureAD/microsoft-authentication-library-for-python/issues/141
    return AadError(
        50059,
        "invalid_request",
        "No tenant-identifying information found in either the request or implied by any provided credentials.",
    )


def scope_not_default(scope: str) -> AadError:
    return AadError(
        1002012,
        "invalid_scope",
        f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
        "with /.default suffixed to the resource identifier (application ID URI).",
    )


# --- application and redirect URI ------------------------------------------------------------------------


def app_not_found(client_id: str, directory_name: str) -> AadError:
    return AadError(
        700016,
        "unauthorized_client",
        f"Application with identifier '{client_id}' was not found in the directory '{directory_name}'. This can "
        "happen if the application has not been installed by the administrator of the tenant or consented to by "
        "any user in the tenant. You may have sent your authentication request to the wrong tenant.",
    )


def redirect_uri_mismatch(redirect_uri: str, client_id: str) -> AadError:
    return AadError(
        50011,
        "invalid_request",
        f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured "
        f"for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to "
        f"your application in the Azure portal. Navigate to {_GO_LINK_REDIRECT} to learn more about how to fix "
        "this.",
    )


def single_tenant_on_multi_tenant_endpoint(client_id: str, app_name: str) -> AadError:
    return AadError(
        50194,
        "invalid_request",
        f"Application '{client_id}'({app_name}) is not configured as a multi-tenant application. Usage of the "
        "/common endpoint is not supported for such applications created after '10/15/2018'. Use a "
        "tenant-specific endpoint or configure the application to be multi-tenant.",
    )


def personal_only_app(client_id: str, app_name: str) -> AadError:
    return AadError(
        9002331,
        "invalid_request",
        f"Application '{client_id}'({app_name}) is configured for use by Microsoft Account users only. Please use "
        "the /consumers endpoint to serve this request.",
    )


def not_enabled_for_consumers() -> AadError:
    # Reported by the Microsoft account (consumer) sign-in service, which sends no AADSTS code.
    return AadError(
        None,
        "unauthorized_client",
        "The client does not exist or is not enabled for consumers. If you are the application developer, "
        "configure a new application through the App Registrations in the Azure Portal at "
        "https://go.microsoft.com/fwlink/?linkid=2083908.",
    )


def user_not_in_tenant(
    address: str, identity_provider: str, tenant_name: str, client_id: str, app_name: str
) -> AadError:
    return AadError(
        50020,
        "access_denied",
        f"User account '{address}' from identity provider '{identity_provider}' does not exist in tenant "
        f"'{tenant_name}' and cannot access the application '{client_id}'({app_name}) in that tenant. The account "
        "needs to be added as an external user in the tenant first. Sign out and sign in again with a different "
        "Azure Active Directory user account.",
    )


def personal_account_not_supported(address: str) -> AadError:
    return AadError(
        500200,
        "invalid_request",
        f"User account '{address}' is a personal Microsoft account. Personal Microsoft accounts are not supported "
        "for this application unless explicitly invited to an organization. Try signing out and signing back in "
        "with an organizational account.",
    )


# --- user, consent, session --------------------------------------------------------------------------------


def user_declined() -> AadError:
    return AadError(
        65004, "access_denied", "User declined to consent to access the app.", error_subcode="cancel"
    )


def consent_not_granted(client_id: str, app_name: str, *, on_token_endpoint: bool) -> AadError:
    message = (
        f"The user or administrator has not consented to use the application with ID '{client_id}' named "
        f"'{app_name}'. Send an interactive authorization request for this user and resource."
    )
    if on_token_endpoint:
        return AadError(65001, "invalid_grant", message, suberror="consent_required")
    return AadError(65001, "consent_required", message)


def admin_approval_required(app_name: str) -> AadError:
    return AadError(
        90094,
        "access_denied",
        f"{app_name} needs permission to access resources in your organization that only an admin can grant. "
        "Please ask an admin to grant permission to this app before you can use it.",
    )


def user_disabled() -> AadError:
    return AadError(50057, "invalid_grant", "The user account is disabled.")


def login_required() -> AadError:
    return AadError(50058, "login_required", "A silent sign-in request was sent but no user is signed in.")


# --- client authentication ---------------------------------------------------------------------------------


def client_secret_missing() -> AadError:
    return AadError(
        7000218,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        status=401,
    )


def client_secret_invalid(client_id: str) -> AadError:
    return AadError(
        7000215,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
        f"not the client secret ID, for a secret added to app '{client_id}'.",
        status=401,
    )


def client_secret_expired(client_id: str) -> AadError:
    return AadError(
        7000222,
        "invalid_client",
        f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new "
        f"keys for your app: {_PORTAL_NEW_KEYS_LINK}, or consider using certificate credentials for added "
        f"security: {_GO_LINK_CERT}.",
        status=401,
    )


# --- grants --------------------------------------------------------------------------------------------------


def grant_malformed() -> AadError:
    return AadError(9002313, "invalid_grant", "Invalid request. Request is malformed or invalid.")


def refresh_token_not_valid() -> AadError:
    return AadError(
        70000,
        "invalid_grant",
        "The provided value for the input parameter 'refresh_token' or 'assertion' is not valid.",
    )


def code_already_redeemed() -> AadError:
    return AadError(
        54005,
        "invalid_grant",
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing "
        "refresh token.",
    )


def grant_expired() -> AadError:
    return AadError(
        70008,
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive "
        "authorization request for this user and resource.",
    )


def code_for_other_client() -> AadError:
    return AadError(
        70000, "invalid_grant", "The provided value for the 'code' parameter is not valid. The code was issued to a "
        "different client."
    )


def reply_address_mismatch(given: str, original: str) -> AadError:
    return AadError(
        500112,
        "invalid_grant",
        f"The reply address '{given}' does not match the reply address '{original}' provided when requesting "
        "Authorization code.",
    )


def pkce_verifier_mismatch() -> AadError:
    return AadError(
        501481,
        "invalid_grant",
        "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    )


def refresh_token_inactive(issued: datetime) -> AadError:
    return AadError(
        700082,
        "invalid_grant",
        f"The refresh token has expired due to inactivity. The token was issued on "
        f"{issued.strftime('%Y-%m-%dT%H:%M:%S.%f')}0Z and was inactive for 90.00:00:00.",
    )


def grant_revoked(auth_time: datetime, valid_from: datetime) -> AadError:
    return AadError(
        50173,
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have "
        f"changed or reset their password. The grant was issued on '{auth_time.strftime('%Y-%m-%dT%H:%M:%S')}Z' "
        "and the TokensValidFrom date (before which tokens are not valid) for this user is "
        f"'{valid_from.strftime('%Y-%m-%dT%H:%M:%S')}Z'.",
    )
