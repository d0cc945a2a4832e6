"""Token health: keep refresh tokens alive, find dead grants and failing credentials before they bite.

Microsoft expires a refresh token idle for 90 days (AADSTS700082). The daily sweep reads only the schedule
entries that are due, and fans them out through a Storage queue, one message per connection, so refreshes run
on as many instances as Azure gives the queue. It also warns before recorded client-secret expiry dates and
proves each system's credentials still work.

App-mode connections have no refresh token (client credentials) and never get the keep-alive; the secret watch
covers them, being system-wide. The sweep instead queues a check of each app-mode room Graph refused, so one that
an Exchange admin brought back into scope clears within a day even if nothing else touches it.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.alerts import (
    CREDENTIALS_INVALID,
    REAUTHORIZATION_REQUIRED,
    SECRET_EXPIRED,
    SECRET_EXPIRING,
    AlertService,
)
from shared.clock import Clock, utcnow
from shared.connections import ConnectionAccess
from shared.errors import DomainError, ValidationFailed
from shared.identity import CredentialsInvalid, IdentityPlatform
from shared.integrations import IntegrationService
from shared.models import ACCESS_DENIED, APP, REAUTH_REQUIRED, Connection, Integration
from shared.settings import Settings
from shared.storage.queues import QueueSender
from shared.storage.repositories import Connections, Integrations, RefreshSchedule
from shared.tokens import ReauthorizationRequired, TokenService

log = logging.getLogger(__name__)

TOKEN_REFRESH_QUEUE = "token-refresh"  # noqa: S105  # nosec B105 - a queue name


class TokenHealthService:
    def __init__(
        self, schedule: RefreshSchedule, connections: Connections, integrations: Integrations,
        integration_service: IntegrationService, tokens: TokenService, access: ConnectionAccess,
        identity: IdentityPlatform, alerts: AlertService, queues: QueueSender, settings: Settings,
        clock: Clock = utcnow,
    ) -> None:
        self._schedule = schedule
        self._connections = connections
        self._integrations = integrations
        self._integration_service = integration_service
        self._tokens = tokens
        self._access = access
        self._identity = identity
        self._alerts = alerts
        self._queues = queues
        self._warn_days = sorted(settings.secret_expiry_warn_days, reverse=True)
        self._clock = clock

    # --- the daily sweep -----------------------------------------------------------------------------------------

    def sweep(self, system: str | None = None) -> dict[str, int]:
        """The daily timer's work for every system; `system` narrows it to one institution (an operator's repair,
        or tests sharing tables with other systems' connections)."""
        enqueued = 0
        for entry in self._schedule.due(self._clock()):
            if system is not None and entry.system != system:
                continue
            self._queues.send(TOKEN_REFRESH_QUEUE, {"system": entry.system, "kind": entry.kind,
                                                    "id": entry.subject_id, "due": entry.row_key()})
            enqueued += 1
        checked = rechecks = 0
        for integration in self._integrations.all():
            if system is not None and integration.system != system:
                continue
            self._check_secret_expiry(integration)
            if integration.enabled:
                self._check_credentials(integration)
                checked += 1
            if integration.enabled and integration.app_tenant:
                rechecks += self._queue_access_checks(integration.system)
        log.info("token sweep: %d refreshes queued, %d integrations checked, %d refused rooms rechecked", enqueued,
                 checked, rechecks)
        return {"refreshes_queued": enqueued, "integrations_checked": checked, "access_checks_queued": rechecks}

    def _queue_access_checks(self, system: str) -> int:
        queued = 0
        for connection in self._connections.query("PartitionKey eq @system and mode eq @mode and status eq @status",
                                                  parameters={"system": system, "mode": APP,
                                                              "status": ACCESS_DENIED}):
            self._queues.send(TOKEN_REFRESH_QUEUE, {"system": system, "kind": connection.kind,
                                                    "id": connection.subject_id, "check": "app_access"})
            queued += 1
        return queued

    def _check_secret_expiry(self, integration: Integration) -> None:
        system, expires = integration.system, integration.secret_expires_on
        if expires is None:
            return
        days_left = (expires - self._clock()).total_seconds() / 86400
        if days_left <= 0:
            self._alerts.raise_alert(system, SECRET_EXPIRED, "integration",
                                     f"The client secret expired on {expires.date().isoformat()}: sync has "
                                     "stopped. Create a new secret in the app registration and save it.")
            return
        self._alerts.resolve(system, SECRET_EXPIRED, "integration")
        threshold = next((d for d in reversed(self._warn_days) if days_left <= d), None)
        if threshold is None:
            self._alerts.resolve(system, SECRET_EXPIRING, "integration")
            return
        self._alerts.raise_alert(system, SECRET_EXPIRING, "integration",
                                 f"The client secret expires on {expires.date().isoformat()} (in "
                                 f"{int(days_left)} days). Create a new secret and save it before then.")

    def _check_credentials(self, integration: Integration) -> None:
        try:
            secret = self._integration_service.secrets.value(integration)
            self._identity.check_credentials(integration, secret)
        except CredentialsInvalid as exc:
            self._integration_service.record_credentials_failure(integration.system, exc.microsoft_code)
            self._alerts.raise_alert(integration.system, CREDENTIALS_INVALID, "integration",
                                     f"Microsoft refuses the app's credentials, so nothing syncs: {exc.message}",
                                     exc.microsoft_code)
            return
        except DomainError as exc:  # an outage is not a verdict on the credentials
            log.warning("credential check for %s inconclusive: %s", integration.system, exc.code)
            return
        self._alerts.resolve(integration.system, CREDENTIALS_INVALID, "integration")

    # --- one connection, from the queue --------------------------------------------------------------------------

    def refresh(self, message: dict[str, Any]) -> str:
        """Exercise one connection's refresh token. Outages raise (the queue retries, then poisons); verdicts
        about the grant are recorded and return normally."""
        try:
            system, kind, subject = (str(message[k]) for k in ("system", "kind", "id"))
        except KeyError as missing:
            raise ValidationFailed(str(missing), "is missing from the refresh message") from None
        entry_key = str(message.get("due") or "")
        connection = self._connections.find(system, kind, subject)
        if connection is not None and connection.is_app:
            return self._check_app_access(connection, entry_key, message.get("check") == "app_access")
        if connection is None or (entry_key and not self._tokens.is_current(system, kind, subject, entry_key)):
            self._drop(entry_key)
            return "stale"
        integration = self._integrations.find(system)
        if integration is None or not integration.enabled:
            return "integration_disabled"  # syncing is off; the entry stays for when it is switched on
        if connection.status == REAUTH_REQUIRED:
            self._drop(entry_key)  # a new sign-in schedules a new entry
            return "reauthorization_required"
        try:
            self._access.run(connection, lambda token: None, force_refresh=True)
        except ReauthorizationRequired:
            self._drop(entry_key)
            return "reauthorization_required"
        except CredentialsInvalid:
            return "credentials_invalid"
        self._access.mark_refreshed(connection)
        self._alerts.resolve(system, REAUTHORIZATION_REQUIRED, connection.row_key())
        return "refreshed"

    def _check_app_access(self, connection: Connection, entry_key: str, check: bool) -> str:
        """App mode: nothing to keep alive (a schedule entry left from its delegated past is dropped); a queued
        check asks Graph whether the room is back in scope (recorded, and cleared, by ConnectionAccess)."""
        self._drop(entry_key)
        if not check:
            return "app_mode"
        integration = self._integrations.find(connection.system)
        if integration is None or not integration.enabled or connection.status != ACCESS_DENIED:
            return "app_mode"
        try:
            return "access_ok" if self._access.check_access(connection) else "access_denied"
        except CredentialsInvalid:
            return "credentials_invalid"

    def _drop(self, entry_key: str) -> None:
        if entry_key:
            self._schedule.delete("due", entry_key)
