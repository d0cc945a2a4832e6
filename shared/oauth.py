"""The OAuth 2 authorization code flow (with PKCE) that connects a user's or a space's Microsoft account.

1. `begin` (host app, function key): checks the integration and the return URL, starts an MSAL flow and keeps it
   server side, sealed, under its single-use `state`; answers a URL on our `/oauth/start`.
2. `start_url` (browser): redirects to Microsoft for that pending flow.
3. `complete` (browser, the registered redirect URI): trusts nothing in the query string but a state it issued.
   The flow row is deleted under its ETag before anything else, so a state works once; the code is exchanged by
   MSAL (which checks state and the ID token's nonce); the token cache is stored encrypted; the browser goes back
   to the host's return URL with an outcome code and the account that signed in.

Binding: a flow started with `expected_account` connects only that account (its UPN or email, case-insensitively),
and a connection that exists keeps its Microsoft account (object ID) unless the flow was started with
`replace_account`. Any other sign-in is `wrong_account`: its tokens are dropped and nothing is stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from shared import aadsts, validation
from shared.alerts import REAUTHORIZATION_REQUIRED, AlertService
from shared.clock import Clock, utcnow
from shared.crypto import Cipher
from shared.errors import AlreadyExists, ConcurrencyConflict, DomainError, ValidationFailed
from shared.identity import IdentityPlatform
from shared.integrations import IntegrationService
from shared.models import CONNECTED, CONSUMERS_TENANT_ID, DELEGATED, KINDS, Connection, PendingFlow, state_key
from shared.settings import Settings
from shared.storage.repositories import Connections, PendingFlows
from shared.tokens import TokenService
from shared.validation import field

log = logging.getLogger(__name__)

CONTAINER_SPACE = "container_space_with_seats"
MAX_LOGIN_HINT = 256  # a sign-in name (UPN or email address, at most 254); it is kept in the sealed flow


class ReturnUrlNotAllowed(DomainError):
    code = "return_url_not_allowed"
    status = 400


class SpaceCannotSync(DomainError):
    code = "space_cannot_sync"
    status = 422


# Outcomes the callback reports to the host app (query parameter `outcome`).
OUTCOME_MESSAGES = {
    "connected": "The Microsoft account is connected.",
    "wrong_account": ("You signed in with a different Microsoft account than the one this connection is for. Sign "
                      "out of Microsoft (or use a private window), start again and sign in with the expected one."),
    "consent_denied": "Permission was not granted on Microsoft's consent page.",
    "admin_approval_required": ("Your organization requires an administrator to approve this app before you can "
                                "connect. Ask your Microsoft 365 administrator to grant consent, then try again."),
    "wrong_account_type": ("This kind of Microsoft account cannot be used with this app registration (for example "
                           "a personal account on an app for work or school accounts only)."),
    "integration_disabled": "Outlook sync is disabled for this system.",
    "flow_expired": "The sign-in took too long and expired. Start again.",
    "flow_invalid": "This sign-in link is invalid or was already used. Start again from the booking system.",
    "credentials_invalid": "The app's ID or secret was refused by Microsoft; an administrator must fix them.",
    "authorization_failed": "Microsoft did not complete the authorization.",
}

# Our parameters on the return URL: removed from the host's own query first, so none can be spoofed or doubled.
RESERVED_PARAMS = frozenset({"outcome", "kind", "id", "microsoft_code", "account", "expected_account"})


def outcome_message(outcome: str, account: str | None = None, expected: str | None = None) -> str:
    """The outcome's text; `wrong_account` names both accounts when they are known and look like accounts (the
    landing page takes them from its query string, so anything else is left out rather than echoed)."""
    account, expected = _displayable(account), _displayable(expected)
    if outcome == "wrong_account" and account and expected:
        return (f"You signed in as {account}, but this connection is for {expected}. Sign out of Microsoft (or use "
                f"a private window), start again and sign in as {expected}.")
    return OUTCOME_MESSAGES[outcome]


def _displayable(account: str | None) -> str | None:
    try:
        return validation.mailbox(account, "account") if account else None
    except ValidationFailed:
        return None


@dataclass(frozen=True)
class CallbackResult:
    outcome: str
    return_url: str | None = None  # None: show our own page
    microsoft_code: str | None = None
    system: str | None = None
    kind: str | None = None
    subject_id: str | None = None
    account: str | None = None  # who signed in (UPN or email), once Microsoft said so
    expected_account: str | None = None  # with wrong_account: who should have

    @property
    def message(self) -> str:
        return outcome_message(self.outcome, self.account, self.expected_account)

    def redirect_location(self) -> str | None:
        if not self.return_url:
            return None
        params = {"outcome": self.outcome}
        if self.kind and self.subject_id:
            params.update({"kind": self.kind, "id": self.subject_id})
        if self.microsoft_code:
            params["microsoft_code"] = self.microsoft_code
        if self.account:
            params["account"] = self.account
        if self.expected_account:
            params["expected_account"] = self.expected_account
        parts = urlsplit(self.return_url)
        # The host's other parameters stay byte for byte; ours replace any it had (e.g. a reused landing URL).
        kept = [p for p in parts.query.split("&") if p and unquote_plus(p.split("=", 1)[0]) not in RESERVED_PARAMS]
        query = "&".join([*kept, urlencode(params)])
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class OAuthService:
    def __init__(
        self, flows: PendingFlows, connections: Connections, integrations: IntegrationService, tokens: TokenService,
        alerts: AlertService, identity: IdentityPlatform, cipher: Cipher, settings: Settings, clock: Clock = utcnow,
    ) -> None:
        self._flows = flows
        self._connections = connections
        self._integrations = integrations
        self._tokens = tokens
        self._alerts = alerts
        self._identity = identity
        self._cipher = cipher
        self._settings = settings
        self._clock = clock

    # --- 1. the host app asks for a URL --------------------------------------------------------------------------

    def begin(self, system: str, kind: str, subject_id: str, body: dict[str, Any]) -> dict[str, Any]:
        validation.identifier(system, "system")
        validation.one_of(kind, KINDS, "kind")
        validation.identifier(subject_id, "id")
        return_url = field(body, "return_url", str)
        space_type = field(body, "space_type", str, required=False)
        login_hint = field(body, "login_hint", str, required=False)
        if login_hint is not None:
            validation.bounded(login_hint, "login_hint", MAX_LOGIN_HINT)
        expected = _expected_account(field(body, "expected_account", str, required=False))
        if expected and login_hint and login_hint.strip().lower() != expected:
            raise ValidationFailed("login_hint", "must be the same account as expected_account, or left out")
        replace = field(body, "replace_account", bool, required=False, default=False)
        if kind == "space" and space_type == CONTAINER_SPACE:
            raise SpaceCannotSync("A container space with seats cannot be synced with Outlook; sync its seats' "
                                  "bookings through an ordinary space instead.")
        integration = self._integrations.require_enabled(system)
        self._check_return_url(return_url, integration.allowed_origins)

        # Re-authorization: suggest the connected account, and (on /common) say whether it is work or personal.
        current = None if replace else self._connections.find(system, kind, subject_id)
        hint = expected or login_hint or (current.account_username if current else None) or None
        secret = self._integrations.secrets.value(integration)
        flow = self._identity.start_flow(integration, secret, kind, self._settings.redirect_uri, hint,
                                         _domain_hint(integration.account_type, current))
        now = self._clock()
        expires = now + timedelta(seconds=self._settings.oauth_flow_ttl_seconds)
        state_hash = state_key(flow["state"])
        row = PendingFlow(state_hash=state_hash, system=system, kind=kind, subject_id=subject_id,
                          return_url=return_url, sealed_flow="", client_id=integration.client_id,
                          expires_at=expires, created_at=now, expected_account=expected, replace_account=replace)
        row.sealed_flow = self._cipher.seal(json.dumps(flow).encode(), _flow_context(state_hash))
        self._flows.insert(row)
        start = f"{self._settings.public_base_url.rstrip('/')}/{self._settings.route_prefix}/oauth/start"
        return {"authorize_url": f"{start}?{urlencode({'state': flow['state']})}",
                "expires_at": expires.isoformat()}

    @staticmethod
    def _check_return_url(return_url: str, allowed: list[str]) -> None:
        validation.short_url(return_url, "return_url")
        origin = validation.url_origin(return_url)
        if origin is None:
            raise ValidationFailed("return_url", "must be an absolute http(s) URL")
        if origin not in allowed:
            raise ReturnUrlNotAllowed(f"return_url origin {origin} is not in the integration's "
                                      "allowed_return_origins")

    # --- 2. the browser is sent to Microsoft ----------------------------------------------------------------------

    def start_url(self, state: str | None) -> tuple[str | None, CallbackResult | None]:
        """Microsoft's authorize URL for a pending flow, or the outcome to show when there is none."""
        row = self._flows.get(state_key(state), "flow") if state else None
        if row is None:
            return None, CallbackResult("flow_invalid")
        if row.expires_at <= self._clock():
            return None, CallbackResult("flow_expired", row.return_url, system=row.system, kind=row.kind,
                                        subject_id=row.subject_id)
        flow = json.loads(self._cipher.open(row.sealed_flow, _flow_context(row.state_hash)))
        return str(flow["auth_uri"]), None

    # --- 3. Microsoft sends the browser back ----------------------------------------------------------------------

    def complete(self, query: dict[str, str]) -> CallbackResult:
        state = query.get("state")
        row = self._flows.get(state_key(state), "flow") if state else None
        if row is None:
            return CallbackResult("flow_invalid")
        try:  # single use: whoever deletes the row owns the flow
            self._flows.delete(row.partition_key(), row.row_key(), etag=row.etag)
        except ConcurrencyConflict:
            return CallbackResult("flow_invalid")
        result = self._complete(row, query)
        log.info("oauth callback: system=%s subject=%s:%s outcome=%s code=%s", row.system, row.kind,
                 row.subject_id, result.outcome, result.microsoft_code)
        return result

    def _complete(self, row: PendingFlow, query: dict[str, str]) -> CallbackResult:
        def outcome(name: str, code: str | None = None, **accounts: str | None) -> CallbackResult:
            return CallbackResult(name, row.return_url, code, row.system, row.kind, row.subject_id, **accounts)

        if row.expires_at <= self._clock():
            return outcome("flow_expired")
        integration = self._integrations.require(row.system)
        if not integration.enabled:
            return outcome("integration_disabled")
        if integration.client_id != row.client_id:
            return outcome("flow_invalid")  # the app registration changed while the person was signing in
        if "error" in query:
            code = aadsts.code_of(query)
            return outcome(aadsts.authorize_outcome(query.get("error", ""), code), code)

        flow = json.loads(self._cipher.open(row.sealed_flow, _flow_context(row.state_hash)))
        cache = self._tokens.new_cache()
        secret = self._integrations.secrets.value(integration)
        result = self._identity.redeem(integration, secret, flow, query, cache)
        if "error" in result:
            code = aadsts.code_of(result)
            if result.get("error") == "state_mismatch":
                return outcome("flow_invalid")
            if aadsts.is_credential_problem(code) or result.get("error") == "invalid_client":
                self._integrations.record_credentials_failure(row.system, code)
                return outcome("credentials_invalid", code)
            return outcome(aadsts.authorize_outcome(str(result.get("error")), code), code)

        claims = result.get("id_token_claims") or {}
        account = _signed_in_as(claims)
        if integration.account_type == "organizations" and claims.get("tid") == CONSUMERS_TENANT_ID:
            return outcome("wrong_account_type", account=account)
        if integration.account_type == "consumers" and claims.get("tid") != CONSUMERS_TENANT_ID:
            return outcome("wrong_account_type", account=account)
        if row.expected_account and row.expected_account not in _names_of(claims):
            return outcome("wrong_account", account=account, expected_account=row.expected_account)
        bound = self._connect(row, claims, result, cache)
        if bound is not None:
            return outcome("wrong_account", account=account, expected_account=bound.account_username or None)
        return outcome("connected", account=account)

    def _connect(
        self, row: PendingFlow, claims: dict[str, Any], result: dict[str, Any], cache: Any,
    ) -> Connection | None:
        """Store the connection and its tokens; or, when the connection is bound to another Microsoft account
        (and the flow may not replace it), store nothing and return that connection."""
        now = self._clock()
        username = str(claims.get("preferred_username") or "")
        home_account_id = f"{claims.get('oid')}.{claims.get('tid')}"
        for account in cache.search(cache.CredentialType.ACCOUNT):  # MSAL's own key for the account
            if account.get("local_account_id") == claims.get("oid") and account.get("home_account_id"):
                home_account_id = account["home_account_id"]
                break
        for _ in range(3):
            current = self._connections.find(row.system, row.kind, row.subject_id)
            connection = current or Connection(system=row.system, kind=row.kind, subject_id=row.subject_id)
            if current is not None and current.account_oid and current.account_oid != claims.get("oid"):
                if not row.replace_account:
                    return current
                # A different Microsoft account: calendar choices belonged to the old mailbox.
                connection.sync_resource, connection.sync_calendar_id, connection.freebusy_calendar_id = "", None, None
            connection.mode = DELEGATED  # a sign-in on an app-mode room makes it delegated (room kept)
            connection.status = CONNECTED
            connection.account_oid = str(claims.get("oid") or "")
            connection.account_tenant = str(claims.get("tid") or "")
            connection.account_username = username
            connection.account_name = str(claims.get("name") or "")
            connection.home_account_id = home_account_id
            connection.last_error_code = connection.last_error_message = None
            connection.last_error_at = None
            connection.authorized_at = connection.token_refreshed_at = connection.updated_at = now
            try:
                saved = (self._connections.update(connection) if current is not None
                         else self._connections.insert(connection))
                break
            except (ConcurrencyConflict, AlreadyExists):
                continue
        else:
            raise ConcurrencyConflict("the connection kept changing during authorization")
        self._tokens.store_new(saved, cache)
        self._alerts.resolve(row.system, REAUTHORIZATION_REQUIRED, saved.row_key())
        return None


def _flow_context(state_hash: str) -> str:
    return f"pendingflow|{state_hash}"


def _expected_account(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validation.mailbox(value.strip(), "expected_account")
    except ValidationFailed:
        raise ValidationFailed("expected_account", "must be the account's sign-in name (UPN) or email address, "
                                                   "like marge@contoso.org") from None


def _names_of(claims: dict[str, Any]) -> set[str]:
    """The names the ID token gives the account: `preferred_username` (the UPN for work accounts, the email
    for personal ones), and `upn` and `email` when present; lower case, as sign-in names are case-insensitive."""
    return {str(claims[k]).strip().lower() for k in ("preferred_username", "upn", "email") if claims.get(k)}


def _signed_in_as(claims: dict[str, Any]) -> str | None:
    for key in ("preferred_username", "upn", "email"):
        if claims.get(key):
            return str(claims[key]).strip()
    return None


def _domain_hint(account_type: str, current: Connection | None) -> str | None:
    """On /common, re-authorizing a known account can skip Microsoft's work-or-personal discovery: its tenant
    tells which ("If the tid claim value is 9188040d-..., use domain_hint=consumers. Otherwise, use
    domain_hint=organizations", https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).
    Elsewhere the authority already fixes the kind of account."""
    if account_type != "common" or current is None or not current.account_tenant:
        return None
    return "consumers" if current.account_tenant == CONSUMERS_TENANT_ID else "organizations"
