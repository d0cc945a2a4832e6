"""Integration settings (a system's app registration and switches) and per-location settings for spaces.

Saving validates the credentials against Microsoft's token endpoint first, then stores the secret in Key Vault
(a new version), then the row; a failed check changes nothing. The secret never leaves this module except to
MSAL: responses show only whether one is set, a short hint and its expiry. The webhook signing secret, chosen by
the host, goes to Key Vault the same way; responses only say whether one is set (see shared/webhooks.py).

App access (client credentials for rooms in app mode) names one directory: the integration's own for a
single-tenant app, the institution's for a multi-tenant one. Saving it proves the app can get a token there (an
app without a service principal in that directory answers AADSTS700016: an administrator must consent first), and
warns when the token carries a tenant-wide mailbox permission that would make the Exchange scope pointless.

The webhook URL is the one URL a caller sets that this app fetches itself (return URLs and allowed return origins
are only where browsers are sent back to). Saving it checks where it leads (shared/outbound.py: https, no internal
addresses); its query may carry the receiver's token, so a URL with a query goes to Key Vault too and the row and
responses show it as `...?<redacted>`. Sending that redacted form back keeps the stored URL.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from shared import aadsts, validation
from shared.clock import Clock, iso, utcnow
from shared.errors import ConcurrencyConflict, Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from shared.identity import (
    PLACE_SCOPES,
    TENANT_WIDE_MAILBOX_ROLES,
    CredentialsInvalid,
    IdentityPlatform,
    TokenRefused,
    token_roles,
)
from shared.models import ACCOUNT_TYPES, APP, TITLE_MODES, Integration, LocationSettings
from shared.outbound import REDACTED, Outbound, redact
from shared.secrets import SecretStore, secret_name
from shared.settings import Settings
from shared.storage.repositories import Connections, Integrations, Locations
from shared.validation import field

MAX_SECRET_LENGTH = 1024
MIN_WEBHOOK_SECRET_LENGTH = 32
MAX_WEBHOOK_SECRET_LENGTH = 512


def webhook_secret_name(system: str) -> str:
    """The Key Vault secret holding a system's webhook signing secret (the row keeps only its version)."""
    return secret_name("webhooksecret", system)


def webhook_url_name(system: str) -> str:
    """The Key Vault secret holding a system's full webhook URL when it has a query (the row keeps it redacted)."""
    return secret_name("webhookurl", system)


class IntegrationDisabled(Conflict):
    code = "integration_disabled"


class IntegrationNotConfigured(NotFound):
    code = "integration_not_configured"


class AppNotInDirectory(DomainError):
    """Client credentials were refused because the app has no service principal in the app-access directory."""

    code = "app_not_in_directory"
    status = 422


class AppConnectionsExist(Conflict):
    """App access cannot be turned off (or moved to another directory) under app-mode connections."""

    code = "app_connections_exist"


# Names a multi-tenant authority accepts that are no directory: client credentials cannot use them.
NO_DIRECTORY = ("common", "organizations", "consumers")


class ClientSecretRequired(Forbidden):
    """Changing where tokens and data can go (the app registration, the webhook, the browser's return origins)
    needs proof of the app registration's secret, not only a key that may have leaked."""

    code = "client_secret_required"


# Settings whose change needs the client secret again in the same PUT (app_access: turning it on, or moving it).
GUARDED_FIELDS = ("client_id", "webhook_url", "allowed_return_origins", "app_access")


class ClientSecrets:
    """Client secret values by Key Vault version, cached in memory: versions never change, so a cached value is
    never stale, and a new secret is a new version."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store
        self._values: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def value(self, integration: Integration) -> str:
        key = (integration.secret_name, integration.secret_version)
        with self._lock:
            cached = self._values.get(key)
        if cached is not None:
            return cached
        value = self._store.get(integration.secret_name, integration.secret_version).value
        with self._lock:
            self._values[key] = value
        return value


class IntegrationService:
    def __init__(
        self, integrations: Integrations, locations: Locations, store: SecretStore, secrets: ClientSecrets,
        identity: IdentityPlatform, settings: Settings, clock: Clock = utcnow, *, outbound: Outbound | None = None,
        connections: Connections | None = None,
    ) -> None:
        self._integrations = integrations
        self._connections = connections  # to keep app access on while app-mode connections need it
        self._locations = locations
        self._store = store
        self.secrets = secrets
        self._identity = identity
        self._settings = settings
        self._clock = clock
        self._outbound = outbound or Outbound.from_settings(settings)

    # --- reads used by the other services ------------------------------------------------------------------------

    def require(self, system: str) -> Integration:
        integration = self._integrations.find(system)
        if integration is None:
            raise IntegrationNotConfigured(f"OAuth 2 integration is not set up for system {system}")
        return integration

    def require_enabled(self, system: str) -> Integration:
        integration = self.require(system)
        if not integration.enabled:
            raise IntegrationDisabled(f"OAuth 2 integration is disabled for system {system}")
        return integration

    # --- the HTTP-facing operations ------------------------------------------------------------------------------

    def describe(self, system: str) -> dict[str, Any]:
        validation.identifier(system, "system")
        integration = self._integrations.find(system)
        if integration is None:
            return {"system": system, "configured": False, "redirect_uri": self._settings.redirect_uri}
        return self._to_json(integration)

    def save(self, system: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or replace the integration; returns its description and whether it was created."""
        validation.identifier(system, "system")
        current = self._integrations.find(system)
        candidate, new_secret, new_webhook_secret, new_webhook_url = self._parse(system, body, current)
        if current is not None and new_secret is None:
            _require_secret_for_guarded_changes(current, candidate, new_webhook_url)
        if current is not None and current.app_tenant and current.app_tenant != candidate.app_tenant:
            self._require_no_app_connections(system, current.app_tenant)
        secret = new_secret if new_secret is not None else self.secrets.value(candidate)
        self._identity.check_credentials(candidate, secret)  # raises with Microsoft's code
        candidate.app_access_warning = self._check_app_access(candidate, secret) if candidate.app_tenant else None

        now = self._clock()
        if new_secret is not None:
            candidate.secret_version = self._store.set(
                candidate.secret_name, new_secret, content_type="client secret",
                tags={"system": system, "client_id": candidate.client_id})
            candidate.secret_hint = new_secret[:3] + "…"
        if new_webhook_secret is not None:
            candidate.webhook_secret_version = self._store.set(
                webhook_secret_name(system), new_webhook_secret, content_type="webhook signing secret",
                tags={"system": system})
        if new_webhook_url is not None:
            candidate.webhook_url_version = self._store.set(webhook_url_name(system), new_webhook_url,
                                                            content_type="webhook URL", tags={"system": system})
        candidate.credentials_ok, candidate.credentials_error = True, None
        candidate.credentials_checked_at = now
        candidate.updated_at = now
        if current is None:
            candidate.created_at = now
            saved = self._integrations.insert(candidate)
        else:
            candidate.created_at, candidate.etag = current.created_at, current.etag
            try:
                saved = self._integrations.update(candidate)
            except ConcurrencyConflict:
                raise ConcurrencyConflict("the integration was changed by someone else meanwhile; retry") from None
        return self._to_json(saved), current is None

    def _check_app_access(self, integration: Integration, secret: str) -> str | None:
        """One client-credentials request to the app-access directory; raises with what to fix, or answers a
        warning about tenant-wide mailbox permissions the token carries (None when there are none)."""
        tenant = integration.app_tenant
        try:
            result = self._identity.probe_app_access(integration, secret)
        except CredentialsInvalid as exc:  # discovery failed: no such directory
            raise ValidationFailed("app_access.tenant_id", f"Microsoft does not know the directory {tenant} "
                                                           f"({exc.microsoft_code})") from None
        if "access_token" in result:
            wide = sorted(set(token_roles(str(result["access_token"]))) & TENANT_WIDE_MAILBOX_ROLES)
            if not wide:
                return None
            return (f"The app holds the tenant-wide application permission {', '.join(wide)} in Microsoft Entra ID "
                    f"(directory {tenant}): with it the app can open every mailbox of the directory, whatever the "
                    "Exchange management scope says, because the two grants add up. Remove it from the app "
                    "registration's API permissions (and revoke its admin consent) and keep only the Exchange role "
                    "assignment.")
        code = aadsts.code_of(result)
        if code == "AADSTS700016":
            raise AppNotInDirectory(
                f"The app {integration.client_id} is not known in the directory {tenant} (AADSTS700016): an "
                f"administrator of that directory must consent to it first, e.g. at "
                f"{self._identity.tenant_authority(tenant)}/adminconsent?client_id={integration.client_id}, and "
                "a new consent can take a few minutes to propagate.", microsoft_code=code)
        if code == "AADSTS90002":
            raise ValidationFailed("app_access.tenant_id", f"Microsoft does not know the directory {tenant} ({code})")
        if aadsts.is_credential_problem(code) or result.get("error") in ("invalid_client", "unauthorized_client"):
            raise CredentialsInvalid(
                "App ID or Secret is incorrect. " + aadsts.describe(code, "Microsoft refused the credentials"),
                microsoft_code=code)
        raise TokenRefused(aadsts.describe(code, f"Microsoft refused an app-only token: {result.get('error')}"),
                           microsoft_code=code)

    def _require_no_app_connections(self, system: str, tenant: str) -> None:
        if self._connections is None:
            return
        spaces = [c.subject_id for c in self._connections.of_system(system) if c.mode == APP]
        if spaces:
            shown = ", ".join(spaces[:10]) + (f" and {len(spaces) - 10} more" if len(spaces) > 10 else "")
            raise AppConnectionsExist(
                f"app access to {tenant} is used by {len(spaces)} app-mode space connection(s) ({shown}): delete "
                "them (DELETE .../connections/space/{id}) or sign them in as delegated connections first",
                details={"field": "app_access", "connections": spaces[:100]})

    def record_credentials_failure(self, system: str, microsoft_code: str | None) -> None:
        """The sweep or a token request found the credentials refused: remember it for GET and alerts."""
        for _ in range(3):
            integration = self._integrations.find(system)
            if integration is None:
                return
            integration.credentials_ok, integration.credentials_error = False, microsoft_code
            integration.credentials_checked_at = self._clock()
            try:
                self._integrations.update(integration)
                return
            except ConcurrencyConflict:
                continue

    def _parse(
        self, system: str, body: dict[str, Any], current: Integration | None
    ) -> tuple[Integration, str | None, str | None, str | None]:
        client_id = validation.guid(field(body, "client_id", str), "client_id")
        account_type = validation.one_of(field(body, "account_type", str), ACCOUNT_TYPES, "account_type")
        tenant_id = field(body, "tenant_id", str, required=account_type == "single_tenant")
        if tenant_id is not None:
            tenant_id = validation.tenant(tenant_id, "tenant_id")
        if account_type == "single_tenant" and tenant_id in ("common", "organizations", "consumers"):
            raise ValidationFailed("tenant_id", "a single-tenant app needs its directory (tenant) ID")
        secret = field(body, "client_secret", str, required=current is None)
        if secret is not None:
            secret = secret.strip()
            if not secret or len(secret) > MAX_SECRET_LENGTH:
                raise ValidationFailed("client_secret", f"must be 1-{MAX_SECRET_LENGTH} characters")
        origins = field(body, "allowed_return_origins", list, required=False, default=[])
        if not all(isinstance(o, str) for o in origins) or len(origins) > 20:
            raise ValidationFailed("allowed_return_origins", "must be a list of at most 20 origin strings")
        expires = field(body, "client_secret_expires_on", str, required=False)
        webhook_url, webhook_url_version, new_webhook_url = self._webhook_url(body, current)
        webhook_secret = _webhook_secret(body, webhook_url, current)
        enabled = field(body, "enabled", bool, required=False, default=True)
        app_enabled, app_tenant = _app_access(body, current, account_type, tenant_id)
        room_discovery = _room_discovery(body, current)
        allowed_origins = sorted({validation.origin(o, "allowed_return_origins") for o in origins})
        expires_on = validation.day_or_datetime(expires, "client_secret_expires_on") if expires else None
        if webhook_url:  # last: the only check that needs the network (a DNS lookup)
            self._outbound.check(new_webhook_url or webhook_url, "webhook_url")
        return Integration(
            system=system,
            client_id=client_id,
            account_type=account_type,
            tenant_id=tenant_id,
            enabled=enabled,
            allowed_origins=allowed_origins,
            secret_name=secret_name("clientsecret", system),
            secret_version=current.secret_version if current else "",
            secret_hint=current.secret_hint if current else "",
            secret_expires_on=expires_on,
            webhook_url=webhook_url,
            webhook_url_version=webhook_url_version,
            webhook_secret_version=current.webhook_secret_version if current else "",
            app_access_enabled=app_enabled,
            app_tenant_id=app_tenant,
            room_discovery_delegated=room_discovery,
        ), secret, webhook_secret, new_webhook_url

    def _webhook_url(self, body: dict[str, Any], current: Integration | None) -> tuple[str | None, str, str | None]:
        """(the row's URL, the Key Vault version of the full one, a full URL to store now); its form only."""
        value = field(body, "webhook_url", str, required=False)
        if not value:
            return None, "", None
        url = validation.https_url(value, "webhook_url", allow_http=self._outbound.allow_loopback)
        kept = current is not None and current.webhook_url_version and url == current.webhook_url
        if not kept and urlsplit(url).query == REDACTED:
            raise ValidationFailed("webhook_url", "has a redacted query but no stored URL to keep: send the full URL")
        if kept and current is not None:
            return current.webhook_url, current.webhook_url_version, None
        shown = redact(url)
        return (shown, "", None) if shown == url else (shown, "", url)

    def _to_json(self, integration: Integration) -> dict[str, Any]:
        now = self._clock()
        expires = integration.secret_expires_on
        shown_url = redact(integration.webhook_url) if integration.webhook_url else None  # rows from before, too
        return {
            "system": integration.system,
            "configured": True,
            "client_id": integration.client_id,
            "account_type": integration.account_type,
            "tenant_id": integration.tenant_id,
            "enabled": integration.enabled,
            "allowed_return_origins": integration.allowed_origins,
            "client_secret": {
                "set": bool(integration.secret_version),
                "hint": integration.secret_hint,
                "expires_on": expires.isoformat() if expires else None,
                "days_left": (expires - now).days if expires else None,
            },
            "credentials": {
                "ok": integration.credentials_ok,
                "microsoft_code": integration.credentials_error,
                "checked_at": iso(integration.credentials_checked_at),
            },
            "webhook_url": shown_url,
            "webhook": {"url": shown_url, "secret_set": bool(integration.webhook_secret_version)},
            "redirect_uri": self._settings.redirect_uri,
            "sign_in": sign_in_json(integration, self._identity.authority(integration)),
            "app_access": {
                "enabled": integration.app_access_enabled,
                "tenant_id": integration.app_tenant_id,
                "authority": (self._identity.tenant_authority(integration.app_tenant)
                              if integration.app_tenant else None),
                "scope": self._identity.app_scope,
                "warning": integration.app_access_warning,
            },
            "room_discovery": {
                "delegated": integration.room_discovery_delegated,
                "delegated_scope": PLACE_SCOPES[0],
            },
            "note": "A newly registered app can take a few minutes before Microsoft accepts its credentials.",
            "updated_at": iso(integration.updated_at),
        }

    # --- locations -----------------------------------------------------------------------------------------------

    def location(self, system: str, location: str) -> LocationSettings:
        """A location's settings; the defaults when none were saved."""
        validation.identifier(system, "system")
        validation.identifier(location, "location")
        found = self._locations.get(system, location)
        return found or LocationSettings(system=system, location=location)

    def save_location(self, system: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        validation.identifier(system, "system")
        validation.identifier(location, "location")
        title_mode = validation.one_of(field(body, "title_mode", str), TITLE_MODES, "title_mode")
        populate = field(body, "populate_creator", bool, required=False, default=False)
        for _ in range(3):
            current = self._locations.get(system, location)
            now = self._clock()
            row = LocationSettings(system=system, location=location, title_mode=title_mode,
                                   populate_creator=populate, updated_at=now)
            # The seed: creator details fill only events synced after the switch was turned on.
            was_on = current is not None and current.populate_creator
            row.populate_creator_since = (current.populate_creator_since if was_on and current else
                                          (now if populate else None))
            try:
                if current is None:
                    saved = self._locations.insert(row)
                else:
                    row.etag = current.etag
                    saved = self._locations.update(row)
                return location_json(saved)
            except (ConcurrencyConflict, Conflict):
                continue
        raise ConcurrencyConflict("location settings kept changing; retry")


# Who can sign in through each authority. An account outside it meets Microsoft's own error page, which never
# comes back to the app, so the host must tell people beforehand (README: "Which accounts can sign in").
SIGN_IN_ACCOUNTS = {
    "organizations": (["work_or_school"], "Work or school accounts of any organization."),
    "common": (["work_or_school", "personal"], "Work or school accounts of any organization, and personal "
                                               "Microsoft accounts (outlook.com, hotmail.com, live.com)."),
    "consumers": (["personal"], "Personal Microsoft accounts only (outlook.com, hotmail.com, live.com)."),
    "single_tenant": (["work_or_school"], "Work or school accounts of this one directory (and its guests)."),
}


def sign_in_json(integration: Integration, authority: str) -> dict[str, Any]:
    accounts, text = SIGN_IN_ACCOUNTS[integration.account_type]
    return {"authority": authority, "accounts": accounts, "description": text}


def _require_secret_for_guarded_changes(current: Integration, candidate: Integration,
                                        new_webhook_url: str | None) -> None:
    """A new full webhook URL (one with a query is kept in Key Vault, the row shows it redacted) is a change."""
    changed = [name for name, before, after in (
        ("client_id", current.client_id, candidate.client_id),
        ("webhook_url", current.webhook_url, None if new_webhook_url is not None else candidate.webhook_url),
        ("allowed_return_origins", sorted(current.allowed_origins), sorted(candidate.allowed_origins)),
        # Turning app access on, or pointing it at another directory; turning it off is not guarded.
        ("app_access", current.app_tenant, candidate.app_tenant if candidate.app_tenant else current.app_tenant),
    ) if before != after]
    if changed:
        raise ClientSecretRequired(
            f"changing {', '.join(changed)} requires client_secret in the same request (the app registration's "
            "current secret, which is checked with Microsoft)", details={"field": "client_secret", "changed": changed})


def _app_access(body: dict[str, Any], current: Integration | None, account_type: str,
                tenant_id: str | None) -> tuple[bool, str | None]:
    """(enabled, directory) of app access; kept as it is when the body leaves `app_access` out, so a host that
    saves the integration without knowing the setting does not cut off every app-mode room."""
    raw = field(body, "app_access", dict, required=False)
    if raw is None:
        return (current.app_access_enabled, current.app_tenant_id) if current else (False, None)
    unknown = set(raw) - {"enabled", "tenant_id"}
    if unknown:
        raise ValidationFailed(f"app_access.{sorted(unknown)[0]}", "is not a setting of app access (enabled, "
                                                                   "tenant_id)")
    enabled = _inner(raw, "app_access", "enabled", bool, default=True)
    given = _inner(raw, "app_access", "tenant_id", str)
    if given is not None and given.strip().lower() in NO_DIRECTORY:
        raise ValidationFailed("app_access.tenant_id", "must name one directory (its tenant ID or a verified domain): "
                                                       "client credentials cannot use /common, /organizations or "
                                                       "/consumers, which name no tenant to issue an app-only token "
                                                       "for")
    tenant = validation.tenant(given.strip(), "app_access.tenant_id") if given else None
    if not enabled:
        return False, tenant
    if account_type == "consumers":
        raise ValidationFailed("app_access", "personal Microsoft accounts have no directory and no rooms: app access "
                                             "needs account_type organizations, common or single_tenant")
    if account_type == "single_tenant":
        if tenant is not None and tenant != tenant_id:
            raise ValidationFailed("app_access.tenant_id", "a single-tenant app has app access in its own directory "
                                                           "only: leave it out or send the integration's tenant_id")
        return True, tenant_id
    tenant = tenant or tenant_id
    if tenant is None:
        raise ValidationFailed("app_access.tenant_id", "is required for an organizations or common app: the "
                                                       "directory (tenant) ID of the institution whose rooms are "
                                                       "synced (client credentials need one directory)")
    return True, tenant


def _room_discovery(body: dict[str, Any], current: Integration | None) -> bool:
    """Whether space sign-ins ask for Place.Read.All; kept when the body leaves `room_discovery` out."""
    raw = field(body, "room_discovery", dict, required=False)
    if raw is None:
        return current.room_discovery_delegated if current else False
    unknown = set(raw) - {"delegated"}
    if unknown:
        raise ValidationFailed(f"room_discovery.{sorted(unknown)[0]}", "is not a setting of room discovery "
                                                                       "(delegated)")
    return bool(_inner(raw, "room_discovery", "delegated", bool, default=False))


def _inner(data: dict[str, Any], parent: str, name: str, kind: type, default: Any = None) -> Any:
    """An optional field of a nested object, named by its path when it is wrong."""
    try:
        return field(data, name, kind, required=False, default=default)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{parent}.{name}", exc.message.split(": ", 1)[-1]) from None


def _webhook_secret(body: dict[str, Any], webhook_url: str | None, current: Integration | None) -> str | None:
    """The new signing secret, if one was sent: required the first time a webhook URL is set, kept when omitted."""
    value = field(body, "webhook_secret", str, required=False)
    stored = bool(current and current.webhook_secret_version)
    if value is None:
        if webhook_url and not stored:
            raise ValidationFailed("webhook_secret", f"is required with webhook_url: {MIN_WEBHOOK_SECRET_LENGTH}-"
                                                     f"{MAX_WEBHOOK_SECRET_LENGTH} characters you choose, used to "
                                                     "sign every delivery (e.g. 64 random hex digits)")
        return None
    if not webhook_url:
        raise ValidationFailed("webhook_secret", "is only accepted together with webhook_url")
    if not MIN_WEBHOOK_SECRET_LENGTH <= len(value) <= MAX_WEBHOOK_SECRET_LENGTH:
        raise ValidationFailed("webhook_secret", f"must be {MIN_WEBHOOK_SECRET_LENGTH}-{MAX_WEBHOOK_SECRET_LENGTH} "
                                                 "characters (e.g. 64 random hex digits)")
    if not value.isprintable() or value != value.strip():
        raise ValidationFailed("webhook_secret", "must be printable characters without leading or trailing spaces")
    return value


def location_json(row: LocationSettings) -> dict[str, Any]:
    return {
        "system": row.system,
        "location": row.location,
        "title_mode": row.title_mode,
        "populate_creator": row.populate_creator,
        "populate_creator_since": iso(row.populate_creator_since),
        "updated_at": iso(row.updated_at),
    }

