"""Every setting the app reads, in one place.

Azure Functions hands app settings to the worker as environment variables; `Settings.from_env` is the only code
that reads them. Explicit keyword values win over the environment so tests and the local stack can build a
settings object without touching `os.environ`. Each field is documented in `local.settings.example.json`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ConfigurationError

PUBLIC_CLOUD_AUTHORITY = "https://login.microsoftonline.com"
PUBLIC_CLOUD_GRAPH = "https://graph.microsoft.com/v1.0"


@dataclass(frozen=True)
class Settings:
    # Storage: the same account the Functions runtime uses. A connection string locally (Azurite), or an
    # account name in Azure, reached with the managed identity (identity-based connection).
    storage_connection_string: str = ""
    storage_account_name: str = ""
    storage_endpoint_suffix: str = "core.windows.net"
    table_prefix: str = ""  # lets tests and side-by-side deployments share an account

    # Key Vault: client secrets, the token-cache data key, webhook signing secrets.
    key_vault_url: str = ""
    data_key_secret_name: str = "token-cache-data-key"  # noqa: S105 - a name, not a secret

    # Microsoft endpoints: public cloud by default; a national cloud or the local simulator by setting.
    authority_host: str = PUBLIC_CLOUD_AUTHORITY
    graph_base_url: str = PUBLIC_CLOUD_GRAPH
    # Extra CA bundle for outbound HTTPS (the local stack's CA). Empty: the default trust store.
    outbound_ca_bundle: str = ""

    # Where the app is reachable from browsers; the OAuth redirect URI is derived from it.
    public_base_url: str = ""
    route_prefix: str = "api"

    # OAuth and token health.
    oauth_flow_ttl_seconds: int = 600
    token_refresh_idle_days: int = 30  # exercise refresh tokens well before Microsoft's 90-day inactivity expiry
    secret_expiry_warn_days: tuple[int, ...] = (30, 7)
    alert_resolved_retention_days: int = 14

    # Export: Graph batches in flight at once across all mailboxes in one instance (each mailbox has one).
    graph_global_concurrency: int = 16

    # Two-way sync: how far ahead room calendars are read.
    pull_horizon_days: int = 180

    # Local stack only: lets webhooks go to http and loopback receivers (nothing else internal). Refused in Azure.
    webhook_allow_loopback: bool = False
    # Per-system API keys (x-system-key) on every /systems/{system}/... route; off only for one trusted host.
    system_keys_required: bool = True
    # The admin console (GET /api/console): static pages over the public API. Off unless enabled (404 when off).
    console_enabled: bool = False

    # Change notifications (shared/subscriptions.py): the public HTTPS base Microsoft Graph posts to; empty turns
    # subscriptions off (rooms are then pulled on PULL_SCHEDULE only).
    notification_base_url: str = ""
    push_sweep_minutes: int = 60  # the safety-net pull of a room with a live subscription, at most this often
    push_coalesce_seconds: int = 1  # notifications of one room within this window make one pull

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
        env = os.environ if env is None else env
        unknown = set(explicit) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        storage = get("AzureWebJobsStorage")
        website = get("WEBSITE_HOSTNAME")
        values: dict[str, Any] = {
            "storage_connection_string": storage,
            "storage_account_name": get("AzureWebJobsStorage__accountName"),
            "storage_endpoint_suffix": get("STORAGE_ENDPOINT_SUFFIX", cls.storage_endpoint_suffix),
            "table_prefix": get("TABLE_PREFIX"),
            "key_vault_url": get("KEY_VAULT_URL"),
            "data_key_secret_name": get("DATA_KEY_SECRET_NAME", cls.data_key_secret_name),
            "authority_host": get("IDENTITY_AUTHORITY_HOST", PUBLIC_CLOUD_AUTHORITY),
            "graph_base_url": get("GRAPH_BASE_URL", PUBLIC_CLOUD_GRAPH),
            "outbound_ca_bundle": get("OUTBOUND_CA_BUNDLE"),
            "public_base_url": get("PUBLIC_BASE_URL") or (f"https://{website}" if website else ""),
            "route_prefix": get("ROUTE_PREFIX", "api"),
            "oauth_flow_ttl_seconds": _int(get("OAUTH_FLOW_TTL_SECONDS", "600"), "OAUTH_FLOW_TTL_SECONDS"),
            "token_refresh_idle_days": _int(get("TOKEN_REFRESH_IDLE_DAYS", "30"), "TOKEN_REFRESH_IDLE_DAYS"),
            "secret_expiry_warn_days": tuple(
                _int(part, "SECRET_EXPIRY_WARN_DAYS") for part in get("SECRET_EXPIRY_WARN_DAYS", "30,7").split(",")
                if part.strip()),
            "alert_resolved_retention_days": _int(get("ALERT_RESOLVED_RETENTION_DAYS", "14"),
                                                  "ALERT_RESOLVED_RETENTION_DAYS"),
            "graph_global_concurrency": _int(get("GRAPH_GLOBAL_CONCURRENCY", "16"), "GRAPH_GLOBAL_CONCURRENCY"),
            "pull_horizon_days": _int(get("PULL_HORIZON_DAYS", "180"), "PULL_HORIZON_DAYS"),
            "webhook_allow_loopback": _bool(get("WEBHOOK_ALLOW_LOOPBACK", "false"), "WEBHOOK_ALLOW_LOOPBACK"),
            "system_keys_required": _bool(get("SYSTEM_KEYS_REQUIRED") or "true", "SYSTEM_KEYS_REQUIRED"),
            "notification_base_url": get("NOTIFICATION_BASE_URL") or (f"https://{website}" if website else ""),
            "push_sweep_minutes": _int(get("PUSH_SWEEP_MINUTES", "60"), "PUSH_SWEEP_MINUTES"),
            "push_coalesce_seconds": _int(get("PUSH_COALESCE_SECONDS", "1"), "PUSH_COALESCE_SECONDS"),
            "console_enabled": _bool(get("CONSOLE_ENABLED", "false"), "CONSOLE_ENABLED"),
        }
        values.update(explicit)
        if values["webhook_allow_loopback"] and get("WEBSITE_INSTANCE_ID"):
            # WEBSITE_INSTANCE_ID is set by App Service on every instance: this is Azure, not a laptop.
            raise ConfigurationError("setting WEBHOOK_ALLOW_LOOPBACK is for the local stack only; not in Azure")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject settings that cannot work, with the setting's name, at start rather than mid-request."""
        for name in ("authority_host", "graph_base_url", "key_vault_url", "public_base_url"):
            value = getattr(self, name)
            if value and urlsplit(value).scheme not in ("https", "http"):
                raise ConfigurationError(f"setting {name} must be an absolute URL, got {value!r}")
        if self.authority_host and urlsplit(self.authority_host).scheme != "https":
            raise ConfigurationError("setting authority_host must use https (MSAL refuses anything else)")
        if not 60 <= self.oauth_flow_ttl_seconds <= 3600:
            raise ConfigurationError("setting oauth_flow_ttl_seconds must be between 60 and 3600")
        if not 1 <= self.token_refresh_idle_days <= 80:
            raise ConfigurationError("setting token_refresh_idle_days must be 1-80 (idle tokens expire at 90)")
        if not 7 <= self.pull_horizon_days <= 730:
            raise ConfigurationError("setting pull_horizon_days must be 7-730")
        if not 1 <= self.graph_global_concurrency <= 256:
            raise ConfigurationError("setting graph_global_concurrency must be 1-256")
        if self.notification_base_url:
            parts = urlsplit(self.notification_base_url)
            # Graph posts notifications to https URLs only ("This URL must make use of the HTTPS protocol",
            # https://learn.microsoft.com/graph/api/resources/subscription).
            if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
                raise ConfigurationError("setting notification_base_url must be an https URL without a query, "
                                         f"got {self.notification_base_url!r}")
        if not 5 <= self.push_sweep_minutes <= 1440:
            raise ConfigurationError("setting push_sweep_minutes must be 5-1440")
        if not 1 <= self.push_coalesce_seconds <= 60:
            raise ConfigurationError("setting push_coalesce_seconds must be 1-60")
        if self.table_prefix and not (self.table_prefix.isalnum() and self.table_prefix[0].isalpha()):
            raise ConfigurationError("setting table_prefix must be letters and digits, starting with a letter")

    @property
    def redirect_uri(self) -> str:
        """The URL to register as the app registration's redirect URI."""
        if not self.public_base_url:
            raise ConfigurationError("PUBLIC_BASE_URL (or WEBSITE_HOSTNAME) is not set: no redirect URI")
        return f"{self.public_base_url.rstrip('/')}/{self.route_prefix}/oauth/callback"

    @property
    def notification_url(self) -> str:
        """Where Graph posts change notifications (empty when change notifications are off)."""
        return self._notification_route("changes")

    @property
    def lifecycle_notification_url(self) -> str:
        """Where Graph posts lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)."""
        return self._notification_route("lifecycle")

    def _notification_route(self, name: str) -> str:
        if not self.notification_base_url:
            return ""
        return f"{self.notification_base_url.rstrip('/')}/{self.route_prefix}/notifications/{name}"

    @property
    def tls_verify(self) -> str | bool:
        """What to give `requests`/azure-core as `verify`: the extra CA bundle, or the default trust store."""
        return self.outbound_ca_bundle or True


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false", "1", "0", ""):
        raise ConfigurationError(f"setting {name} must be true or false, got {value!r}")
    return lowered in ("true", "1")


def _int(value: str, name: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigurationError(f"setting {name} must be a whole number, got {value!r}") from None
