"""Connections: their status, the calendars they may sync to, the host's choices, and removing them.

Every Graph call here goes through `ConnectionAccess`, which turns a dead grant into the connection's
"reauthorization required" state and an alert, and refused app credentials into an integration alert, so a
failure found by any path is recorded the same way.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from shared import validation
from shared.alerts import CREDENTIALS_INVALID, REAUTHORIZATION_REQUIRED, AlertService
from shared.clock import Clock, iso, utcnow
from shared.errors import ConcurrencyConflict, DomainError, NotFound, ValidationFailed
from shared.graph.client import GraphClient, GraphError, Mailbox, TokenSource
from shared.identity import CredentialsInvalid
from shared.integrations import IntegrationDisabled, IntegrationService
from shared.models import CONNECTED, DISABLED, KINDS, REAUTH_REQUIRED, Connection, Integration
from shared.storage.repositories import Connections
from shared.tokens import ReauthorizationRequired, TokenService
from shared.validation import field

log = logging.getLogger(__name__)
T = TypeVar("T")
# Graph's calendar IDs are about 150 characters; the bound keeps a caller's text out of Graph paths and table rows.
MAX_CALENDAR_ID = 1024


class NoMailboxAccess(DomainError):
    code = "no_mailbox_access"
    status = 403


class CalendarNotFound(DomainError):
    code = "calendar_not_found"
    status = 422


class ConnectionNotFound(NotFound):
    code = "connection_not_found"


class ConnectionAccess:
    """Runs Graph work for a connection and records what the failures mean."""

    def __init__(self, connections: Connections, integrations: IntegrationService, tokens: TokenService,
                 alerts: AlertService, clock: Clock = utcnow) -> None:
        self._connections = connections
        self._integrations = integrations
        self._tokens = tokens
        self._alerts = alerts
        self._clock = clock

    def require(self, system: str, kind: str, subject_id: str) -> Connection:
        validation.identifier(system, "system")
        validation.one_of(kind, KINDS, "kind")
        validation.identifier(subject_id, "id")
        connection = self._connections.find(system, kind, subject_id)
        if connection is None:
            raise ConnectionNotFound(f"no {kind} connection {subject_id} in system {system}")
        return connection

    def token_source(self, integration: Integration, connection: Connection) -> TokenSource:
        def token(force_refresh: bool) -> str:
            return self._tokens.access_token(integration, connection, force_refresh=force_refresh)

        return token

    def run(self, connection: Connection, work: Callable[[TokenSource], T], *, force_refresh: bool = False,
            integration: Integration | None = None) -> T:
        """Do `work` with a token source for the connection; a dead grant or refused credentials are recorded.
        A caller that has just read the system's integration passes it (one table read less a pull)."""
        if integration is None or integration.system != connection.system:
            integration = self._integrations.require(connection.system)
        if not integration.enabled:
            raise IntegrationDisabled(f"OAuth 2 integration is disabled for system {connection.system}")
        if connection.status == REAUTH_REQUIRED:
            raise ReauthorizationRequired("the connection must be authorized again",
                                          microsoft_code=connection.last_error_code)
        source = self.token_source(integration, connection)
        try:
            if force_refresh:
                source(True)
            return work(source)
        except ReauthorizationRequired as exc:
            self.mark_reauthorization_required(connection, exc.microsoft_code, exc.message)
            raise
        except CredentialsInvalid as exc:
            self._integrations.record_credentials_failure(connection.system, exc.microsoft_code)
            self._alerts.raise_alert(connection.system, CREDENTIALS_INVALID, "integration", exc.message,
                                     exc.microsoft_code)
            raise

    def mark_reauthorization_required(self, connection: Connection, code: str | None, message: str) -> None:
        self._update(connection, lambda c: _set_error(c, REAUTH_REQUIRED, code, message, self._clock()))
        subject = connection.row_key()
        self._alerts.raise_alert(connection.system, REAUTHORIZATION_REQUIRED, subject,
                                 f"The Microsoft authorization of {subject} must be renewed: {message}", code)

    def mark_refreshed(self, connection: Connection) -> None:
        def refreshed(c: Connection) -> None:
            c.token_refreshed_at = self._clock()

        self._update(connection, refreshed)

    def _update(self, connection: Connection, change: Callable[[Connection], None]) -> Connection:
        for attempt in range(8):
            if attempt:
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311  # nosec B311 - jitter
            current = self._connections.find(connection.system, connection.kind, connection.subject_id)
            if current is None:
                return connection
            change(current)
            current.updated_at = self._clock()
            try:
                return self._connections.update(current)
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict("the connection kept changing; retry")


def _set_error(connection: Connection, status: str, code: str | None, message: str, now: datetime) -> None:
    connection.status = status
    connection.last_error_code, connection.last_error_message, connection.last_error_at = code, message, now


class ConnectionService:
    def __init__(self, connections: Connections, access: ConnectionAccess, integrations: IntegrationService,
                 tokens: TokenService, graph: GraphClient, clock: Clock = utcnow,
                 event_remover: Callable[[Connection], int] | None = None,
                 on_change: Callable[[Connection], None] | None = None) -> None:
        self._event_remover = event_remover  # the export side deletes the events it created
        self._on_change = on_change  # the pull side tracks which spaces have two-way sync
        self._connections = connections
        self._access = access
        self._integrations = integrations
        self._tokens = tokens
        self._graph = graph
        self._clock = clock

    def status(self, system: str, kind: str, subject_id: str) -> dict[str, Any]:
        connection = self._access.require(system, kind, subject_id)
        integration = self._integrations.require(system)
        return to_json(connection, integration.enabled)

    def calendars(self, system: str, kind: str, subject_id: str) -> dict[str, Any]:
        connection = self._access.require(system, kind, subject_id)
        mailbox = _mailbox(connection)
        calendars = self._access.run(connection, lambda token: self._list(token, mailbox))
        return {"sync_resource": connection.mailbox, "calendars": calendars}

    def _list(self, token: TokenSource, mailbox: Mailbox) -> list[dict[str, Any]]:
        try:
            raw = self._graph.list_calendars(token, mailbox)
        except GraphError as exc:
            raise _mailbox_error(exc, mailbox) from None
        return [{"id": c["id"], "name": c.get("name"), "can_edit": bool(c.get("canEdit")),
                 "is_default": bool(c.get("isDefaultCalendar")),
                 "owner": (c.get("owner") or {}).get("address")} for c in raw]

    def update(self, system: str, kind: str, subject_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Choose the sync resource, calendars, and for spaces the location and two-way switch. Chosen calendars
        are checked against the mailbox: they must exist and be writable (the free/busy one readable)."""
        connection = self._access.require(system, kind, subject_id)
        allowed = {"sync_resource", "sync_calendar_id", "freebusy_calendar_id", "location", "two_way"}
        if kind == "space":
            allowed -= {"freebusy_calendar_id"}
        else:
            allowed -= {"location", "two_way"}
        unknown = set(body) - allowed
        if unknown:
            raise ValidationFailed(sorted(unknown)[0], f"is not a setting of a {kind} connection")
        changes: dict[str, Any] = {}
        if "sync_resource" in body:
            resource = (field(body, "sync_resource", str, required=False) or "").strip()
            changes["sync_resource"] = validation.mailbox(resource, "sync_resource") if resource else ""
            if changes["sync_resource"] != connection.sync_resource and "sync_calendar_id" not in body:
                changes["sync_calendar_id"] = None  # the old calendar belongs to the old mailbox
        for name in ("sync_calendar_id", "freebusy_calendar_id", "location"):
            if name in body:
                value = field(body, name, str, required=False)
                if name == "location" and value is not None:
                    validation.identifier(value, "location")
                elif value is not None:
                    validation.bounded(value, name, MAX_CALENDAR_ID)
                changes[name] = value
        if "two_way" in body:
            changes["two_way"] = field(body, "two_way", bool)

        target = Connection(**{**_fields(connection), **changes})
        checks = [(n, changes[n]) for n in ("sync_calendar_id", "freebusy_calendar_id") if changes.get(n)]
        if checks or "sync_resource" in changes:
            self._access.run(target, lambda token: self._verify(token, target, checks))
        for _ in range(5):
            current = self._access.require(system, kind, subject_id)
            for name, value in changes.items():
                setattr(current, name, value)
            current.updated_at = self._clock()
            try:
                saved = self._connections.update(current)
                break
            except ConcurrencyConflict:
                continue
        else:
            raise ConcurrencyConflict("the connection kept changing; retry")
        if self._on_change is not None:
            self._on_change(saved)
        return to_json(saved, True)

    def _verify(self, token: TokenSource, connection: Connection, checks: list[tuple[str, str]]) -> None:
        mailbox = _mailbox(connection)
        calendars = {c["id"]: c for c in self._list(token, mailbox)}
        for name, calendar_id in checks:
            calendar = calendars.get(calendar_id)
            if calendar is None:
                raise CalendarNotFound(f"{name}: no calendar with that ID in {connection.mailbox}")
            if name == "sync_calendar_id" and not calendar["can_edit"]:
                raise NoMailboxAccess(f"{name}: the signed-in account cannot write to that calendar")

    def remove(self, system: str, kind: str, subject_id: str, *, remove_events: bool) -> dict[str, Any]:
        """Remove the authorization: tokens erased, connection deleted. Calendar events stay unless asked."""
        connection = self._access.require(system, kind, subject_id)
        removed_events = 0
        if remove_events and self._event_remover is not None:
            removed_events = self._event_remover(connection)
        self._tokens.erase(connection)
        self._connections.delete(system, connection.row_key())
        if self._on_change is not None:
            connection.two_way = False
            self._on_change(connection)
        return {"removed": True, "events_removed": removed_events}


def _mailbox(connection: Connection) -> Mailbox:
    own = not connection.sync_resource or connection.sync_resource == connection.account_username.lower()
    return Mailbox(None if own else connection.sync_resource)


def _mailbox_error(exc: GraphError, mailbox: Mailbox) -> DomainError:
    if exc.http_status == 400:
        return ValidationFailed("sync_resource", f"Microsoft Graph refused the mailbox: {exc.graph_code}")
    if exc.http_status in (403, 404) or exc.graph_code in ("ErrorAccessDenied", "ErrorInvalidUser",
                                                           "ErrorItemNotFound", "MailboxNotEnabledForRESTAPI"):
        who = mailbox.address or "the signed-in mailbox"
        return NoMailboxAccess(
            f"The signed-in account cannot open the calendars of {who}. For a room, an administrator must "
            "delegate full access to the room mailbox, or share its calendar with edit rights.",
            microsoft_code=exc.graph_code)
    return exc


def _fields(connection: Connection) -> dict[str, Any]:
    return {k: v for k, v in vars(connection).items() if k != "etag"}


def to_json(connection: Connection, integration_enabled: bool) -> dict[str, Any]:
    status = connection.status if integration_enabled else DISABLED
    data: dict[str, Any] = {
        "system": connection.system,
        "kind": connection.kind,
        "id": connection.subject_id,
        "status": status,
        "account": {"username": connection.account_username, "name": connection.account_name,
                    "object_id": connection.account_oid, "tenant_id": connection.account_tenant},
        "sync_resource": connection.mailbox,
        "sync_calendar_id": connection.sync_calendar_id,
        "authorized_at": iso(connection.authorized_at),
        "token_refreshed_at": iso(connection.token_refreshed_at),
        "last_error": None if connection.last_error_code is None and connection.last_error_message is None else {
            "microsoft_code": connection.last_error_code, "message": connection.last_error_message,
            "at": iso(connection.last_error_at)},
    }
    if connection.kind == "user":
        data["freebusy_calendar_id"] = connection.freebusy_calendar_id
    else:
        data["location"] = connection.location
        data["two_way"] = connection.two_way
    if status == CONNECTED and not connection.sync_calendar_id:
        data["next_step"] = "choose a sync calendar (GET .../calendars, then PATCH sync_calendar_id)"
    return data

