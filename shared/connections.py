"""Connections: their status, the calendars they may sync to, the host's choices, and removing them.

A connection is in one of two modes (`Connection.mode`). `delegated`: a person signed in, and Graph is called with
their tokens. `app`: a room mailbox reached with the app's own client-credentials token, limited by an Exchange
Online RBAC-for-Applications management scope; nobody signs in, it is created by `PUT` with the room's address
after one Graph call proves the scope covers the room.

Every Graph call for a connection goes through `ConnectionAccess` (`run`, `token_source`), which picks the token
by mode and records what failures mean, so a failure found by any path is recorded the same way: a dead grant
becomes "reauthorization required" and an alert; refused app credentials an integration alert; Graph refusing an
app-mode room (403: the room left the scope, or the role assignment or consent went) "access denied" and an alert
naming the room and what an Exchange admin must fix, cleared by the next call that works.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from shared import validation
from shared.alerts import APP_ACCESS_DENIED, CREDENTIALS_INVALID, REAUTHORIZATION_REQUIRED, AlertService
from shared.clock import Clock, iso, utcnow
from shared.errors import AlreadyExists, ConcurrencyConflict, Conflict, DomainError, NotFound, ValidationFailed
from shared.graph.client import GraphClient, GraphError, Mailbox, TokenSource
from shared.identity import CredentialsInvalid
from shared.integrations import IntegrationDisabled, IntegrationNotConfigured, IntegrationService
from shared.models import (
    ACCESS_DENIED,
    APP,
    CONNECTED,
    DELEGATED,
    DISABLED,
    KINDS,
    REAUTH_REQUIRED,
    Connection,
    Integration,
)
from shared.oauth import CONTAINER_SPACE, SpaceCannotSync
from shared.storage.repositories import Connections
from shared.tokens import ReauthorizationRequired, TokenService
from shared.validation import field

log = logging.getLogger(__name__)
T = TypeVar("T")
# Graph's calendar IDs are about 150 characters; the bound keeps a caller's text out of Graph paths and table rows.
MAX_CALENDAR_ID = 1024
MAX_LIST_PAGE = 200


class NoMailboxAccess(DomainError):
    code = "no_mailbox_access"
    status = 403


class CalendarNotFound(DomainError):
    code = "calendar_not_found"
    status = 422


class ConnectionNotFound(NotFound):
    code = "connection_not_found"


class MailboxNotInScope(DomainError):
    """App mode: Graph refused the room mailbox (403), i.e. the Exchange management scope of the app's role
    assignment does not cover it (or the assignment or consent is gone). Carries Graph's code."""

    code = "mailbox_not_in_scope"
    status = 403


class MailboxNotFound(DomainError):
    code = "mailbox_not_found"
    status = 422


class AppAccessNotEnabled(Conflict):
    code = "app_access_not_enabled"


# Graph's answers for an address that is no mailbox of the directory (or has none Graph can reach).
NO_MAILBOX_CODES = ("ErrorInvalidUser", "ResourceNotFound", "MailboxNotEnabledForRESTAPI", "ErrorItemNotFound",
                    "Request_ResourceNotFound")
PROPAGATION = "Exchange applies scope and role changes after 30 minutes to 2 hours"


def scope_fix(client_id: str, address: str) -> str:
    """What an Exchange admin runs when Graph refuses an app-mode room (README: "Rooms: choosing a mode")."""
    return (f"An Exchange administrator checks it with `Test-ServicePrincipalAuthorization -Identity {client_id} "
            f"-Resource {address}`; when InScope is False, the room must be brought into the management scope of "
            "the app's role assignment (e.g. a scope with -RecipientRestrictionFilter \"RecipientTypeDetails -eq "
            "'RoomMailbox'\"), or the role assigned: `New-ManagementRoleAssignment -App "
            f"{client_id} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope \"<scope name>\"`. "
            f"{PROPAGATION}.")


def app_access_not_enabled(system: str) -> AppAccessNotEnabled:
    return AppAccessNotEnabled(
        f"app access is not enabled for system {system}: save the integration with "
        "app_access {\"enabled\": true, \"tenant_id\": \"<directory of the rooms>\"} (PUT .../integration) first",
        details={"field": "app_access"})


def app_mailbox_error(exc: GraphError, address: str, integration: Integration) -> DomainError:
    """What Graph's refusal of a room mailbox reached with the app's token means for the host."""
    if exc.http_status == 403:
        return MailboxNotInScope(
            f"Microsoft Graph refused app-only access to the room mailbox {address} ({exc.graph_code}): it is "
            "outside the app's Exchange Online management scope, or the app has no 'Application "
            f"Calendars.ReadWrite' role assignment. {scope_fix(integration.client_id, address)}",
            microsoft_code=exc.graph_code, details={"room": address})
    if exc.http_status == 404 or exc.graph_code in NO_MAILBOX_CODES:
        return MailboxNotFound(f"no mailbox {address} in the directory {integration.app_tenant} "
                               f"({exc.graph_code}): check the room's address", microsoft_code=exc.graph_code,
                               details={"field": "sync_resource"})
    if exc.http_status == 400:
        return ValidationFailed("sync_resource", f"Microsoft Graph refused the mailbox: {exc.graph_code}")
    return exc


class ConnectionAccess:
    """Runs Graph work for a connection and records what the failures mean."""

    def __init__(self, connections: Connections, integrations: IntegrationService, tokens: TokenService,
                 alerts: AlertService, clock: Clock = utcnow, *, graph: GraphClient | None = None) -> None:
        self._connections = connections
        self._integrations = integrations
        self._tokens = tokens
        self._alerts = alerts
        self._clock = clock
        self._graph = graph  # for the access checks of app-mode rooms

    def require(self, system: str, kind: str, subject_id: str) -> Connection:
        validation.identifier(system, "system")
        validation.one_of(kind, KINDS, "kind")
        validation.identifier(subject_id, "id")
        connection = self._connections.find(system, kind, subject_id)
        if connection is None:
            raise ConnectionNotFound(f"no {kind} connection {subject_id} in system {system}")
        return connection

    def token_source(self, integration: Integration, connection: Connection,
                     scopes: tuple[str, ...] | None = None) -> TokenSource:
        """The one way to a connection's Graph token: the app's client-credentials token in app mode (every
        granted application permission, `.default`), else the signed-in account's (the sync scopes, or
        `scopes`)."""
        if connection.is_app:
            if integration.app_tenant is None:
                raise app_access_not_enabled(connection.system)

            def app_token(force_refresh: bool) -> str:
                return self._tokens.app_token(integration, force_refresh=force_refresh)

            return app_token

        def token(force_refresh: bool) -> str:
            return self._tokens.access_token(integration, connection, force_refresh=force_refresh, scopes=scopes)

        return token

    def run(self, connection: Connection, work: Callable[[TokenSource], T], *, force_refresh: bool = False,
            integration: Integration | None = None, scopes: tuple[str, ...] | None = None) -> T:
        """Do `work` with a token source for the connection; a dead grant, refused credentials or (app mode) a
        refused room are recorded, and a room refused before is cleared when the work succeeds. A caller that has
        just read the system's integration passes it (one table read less a pull)."""
        if integration is None or integration.system != connection.system:
            integration = self._integrations.require(connection.system)
        if not integration.enabled:
            raise IntegrationDisabled(f"OAuth 2 integration is disabled for system {connection.system}")
        if connection.status == REAUTH_REQUIRED:
            raise ReauthorizationRequired("the connection must be authorized again",
                                          microsoft_code=connection.last_error_code)
        source = self.token_source(integration, connection, scopes)
        try:
            if force_refresh:
                source(True)
            result = work(source)
        except ReauthorizationRequired as exc:
            self.mark_reauthorization_required(connection, exc.microsoft_code, exc.message)
            raise
        except CredentialsInvalid as exc:
            self.credentials_refused(connection.system, exc)
            raise
        except GraphError as exc:
            if connection.is_app and exc.http_status == 403:
                refused = app_mailbox_error(exc, connection.mailbox, integration)
                self.mark_access_denied(connection, exc.graph_code, refused.message)
                raise refused from None
            raise
        if connection.is_app and connection.status == ACCESS_DENIED:
            self.mark_access_restored(connection)
        return result

    def credentials_refused(self, system: str, exc: CredentialsInvalid) -> None:
        """Microsoft refused the app's own credentials: recorded on the integration and alerted, whichever path
        found it (a delegated refresh, an app-only token, the daily check)."""
        self._integrations.record_credentials_failure(system, exc.microsoft_code)
        self._alerts.raise_alert(system, CREDENTIALS_INVALID, "integration", exc.message, exc.microsoft_code)

    # --- app mode ----------------------------------------------------------------------------------------------

    def app_token_source(self, integration: Integration) -> TokenSource:
        """The app's own token for work that concerns no connection yet (a room being checked, the Places list);
        refused credentials are recorded as for any connection."""
        if integration.app_tenant is None:
            raise app_access_not_enabled(integration.system)

        def app_token(force_refresh: bool) -> str:
            try:
                return self._tokens.app_token(integration, force_refresh=force_refresh)
            except CredentialsInvalid as exc:
                self.credentials_refused(integration.system, exc)
                raise

        return app_token

    def room_calendars(self, integration: Integration, address: str) -> list[dict[str, Any]]:
        """The access check of a room in app mode: ONE Graph call (its calendars, which also name the default
        one), mapping a refusal to what the host must fix; nothing is recorded (no connection uses it yet)."""
        if self._graph is None:
            raise RuntimeError("ConnectionAccess was built without a Graph client")
        try:
            return self._graph.list_calendars(self.app_token_source(integration), Mailbox(address))
        except GraphError as exc:
            raise app_mailbox_error(exc, address, integration) from None

    def check_access(self, connection: Connection) -> bool:
        """Whether Graph lets the app into an app-mode room now (one light call through `run`, so a refusal is
        recorded and a success clears an earlier one)."""
        if self._graph is None:
            raise RuntimeError("ConnectionAccess was built without a Graph client")
        graph, path = self._graph, f"{Mailbox(connection.sync_resource).path}/calendars"
        try:
            self.run(connection, lambda token: graph.request(token, "GET", path,
                                                             params={"$select": "id", "$top": "1"}))
        except MailboxNotInScope:
            return False
        return True

    def note_refusals(self, connection: Connection, graph_codes: Iterable[str | None]) -> bool:
        """For work whose Graph errors come back per request (a `$batch`): an app-mode room refused with
        `ErrorAccessDenied` is marked as `run` marks it. Answers whether it was."""
        if not connection.is_app or "ErrorAccessDenied" not in set(graph_codes):
            return False
        integration = self._integrations.require(connection.system)
        refused = app_mailbox_error(GraphError(403, "ErrorAccessDenied", "Access is denied."), connection.mailbox,
                                    integration)
        self.mark_access_denied(connection, "ErrorAccessDenied", refused.message)
        return True

    def mark_access_denied(self, connection: Connection, code: str | None, message: str) -> None:
        self._update(connection, lambda c: _set_error(c, ACCESS_DENIED, code, message, self._clock()))
        self._alerts.raise_alert(connection.system, APP_ACCESS_DENIED, connection.row_key(),
                                 f"Room {connection.mailbox} ({connection.row_key()}) does not sync: {message}", code)

    def alerts_cleared(self, connection: Connection) -> None:
        """A connection (re)made in app mode: what was raised about its subject before no longer holds."""
        self._alerts.resolve(connection.system, APP_ACCESS_DENIED, connection.row_key())
        self._alerts.resolve(connection.system, REAUTHORIZATION_REQUIRED, connection.row_key())

    def mark_access_restored(self, connection: Connection) -> None:
        def restored(c: Connection) -> None:
            if c.status == ACCESS_DENIED:
                c.status = CONNECTED
                c.last_error_code = c.last_error_message = None
                c.last_error_at = None

        self._update(connection, restored)
        connection.status = CONNECTED
        self._alerts.resolve(connection.system, APP_ACCESS_DENIED, connection.row_key())

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
                 on_change: Callable[[Connection], None] | None = None,
                 before_remove: Callable[[Connection], None] | None = None) -> None:
        self._event_remover = event_remover  # the export side deletes the events it created
        self._on_change = on_change  # the pull side tracks which spaces have two-way sync
        self._before_remove = before_remove  # what must still use the connection's token before it is erased
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

    def listing(self, system: str, kind: str | None, cursor: str | None, limit: str | None) -> dict[str, Any]:
        """A page of the system's connections with their health, spaces before users, each in ID order. The
        cursor is the last connection of the previous page (`kind:id`); the page size is 1-200 (default 50)."""
        validation.identifier(system, "system")
        if kind is not None:
            validation.one_of(kind, KINDS, "kind")
        size = validation.whole_number(limit, "limit", 50)
        if not 1 <= size <= MAX_LIST_PAGE:
            raise ValidationFailed("limit", f"must be 1-{MAX_LIST_PAGE}")
        if cursor:
            found_kind, _, found_id = cursor.partition(":")
            if found_kind not in KINDS:
                raise ValidationFailed("cursor", "must be a next_cursor this list returned (`kind:id`)")
            validation.identifier(found_id, "cursor")
        try:
            enabled = self._integrations.require(system).enabled
        except IntegrationNotConfigured:
            enabled = False
        rows = self._connections.listing(system, kind=kind, after=cursor or "", limit=size + 1)
        page = rows[:size]
        more = len(rows) > size
        return {"system": system, "connections": [to_json(c, enabled) for c in page],
                "next_cursor": page[-1].row_key() if more else None, "more": more}

    def calendars(self, system: str, kind: str, subject_id: str) -> dict[str, Any]:
        connection = self._access.require(system, kind, subject_id)
        mailbox = _mailbox(connection)
        calendars = self._access.run(connection, lambda token: self._list(token, mailbox, connection))
        return {"sync_resource": connection.mailbox, "calendars": calendars}

    def _list(self, token: TokenSource, mailbox: Mailbox, connection: Connection) -> list[dict[str, Any]]:
        try:
            raw = self._graph.list_calendars(token, mailbox)
        except GraphError as exc:
            if connection.is_app:
                raise  # `ConnectionAccess.run` maps it, and records a refused room
            raise _mailbox_error(exc, mailbox) from None
        return _calendars_json(raw)

    # --- app mode: a room without a sign-in ------------------------------------------------------------------------

    def put_app(self, system: str, kind: str, subject_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create (or replace) a space connection in app mode: the room's address, checked with one Graph call
        with the app's token before anything is stored. Replacing a delegated connection erases its tokens.
        Returns the connection's JSON and whether it was created."""
        validation.identifier(system, "system")
        validation.one_of(kind, KINDS, "kind")
        validation.identifier(subject_id, "id")
        unknown = set(body) - {"mode", "sync_resource", "sync_calendar_id", "location", "two_way", "space_type"}
        if unknown:
            raise ValidationFailed(sorted(unknown)[0], "is not a setting of an app-mode space connection")
        mode = field(body, "mode", str)
        if mode == DELEGATED:
            raise ValidationFailed("mode", "a delegated connection is made by a sign-in: POST "
                                           f".../connections/{kind}/{subject_id}/authorize")
        validation.one_of(mode, (APP,), "mode")
        if kind != "space":
            raise ValidationFailed("kind", "app mode is for spaces (room mailboxes) only; a user connects by signing "
                                           "in")
        if field(body, "space_type", str, required=False) == CONTAINER_SPACE:
            raise SpaceCannotSync("A container space with seats cannot be synced with Outlook; sync its seats' "
                                  "bookings through an ordinary space instead.")
        address = validation.mailbox(field(body, "sync_resource", str).strip(), "sync_resource")
        calendar_id = field(body, "sync_calendar_id", str, required=False)
        if calendar_id is not None:
            validation.bounded(calendar_id, "sync_calendar_id", MAX_CALENDAR_ID)
        location = field(body, "location", str, required=False)
        if location is not None:
            validation.identifier(location, "location")
        two_way = field(body, "two_way", bool, required=False, default=False)
        integration = self._integrations.require_enabled(system)
        if integration.app_tenant is None:
            raise app_access_not_enabled(system)

        calendars = _calendars_json(self._access.room_calendars(integration, address))
        chosen = _writable(calendars, calendar_id, address) if calendar_id else _default_calendar(calendars, address)
        now = self._clock()
        for _ in range(5):
            current = self._connections.find(system, kind, subject_id)
            row = Connection(system=system, kind=kind, subject_id=subject_id, mode=APP, status=CONNECTED,
                             sync_resource=address, sync_calendar_id=chosen, location=location, two_way=two_way,
                             authorized_at=now, updated_at=now)
            try:
                if current is None:
                    saved = self._connections.insert(row)
                else:
                    row.etag = current.etag
                    saved = self._connections.update(row)
                break
            except (ConcurrencyConflict, AlreadyExists):
                continue
        else:
            raise ConcurrencyConflict("the connection kept changing; retry")
        if current is not None and not current.is_app:
            self._tokens.erase(current)  # the sign-in it replaces is no longer used
        self._access.alerts_cleared(saved)
        if self._on_change is not None:
            self._on_change(saved)
        return to_json(saved, True), current is None

    def _check_app_choices(self, connection: Connection, changes: dict[str, Any]) -> None:
        """App mode: a new room or calendar is checked with the app's token (nothing recorded on failure); a new
        room without a chosen calendar gets its default one."""
        address = changes.get("sync_resource", connection.sync_resource)
        if not address:
            raise ValidationFailed("sync_resource", "an app-mode connection syncs a room mailbox: give its address")
        moved = address != connection.sync_resource
        if not moved and not changes.get("sync_calendar_id"):
            changes.pop("sync_resource", None)
            return
        integration = self._integrations.require_enabled(connection.system)
        if integration.app_tenant is None:
            raise app_access_not_enabled(connection.system)
        calendars = _calendars_json(self._access.room_calendars(integration, address))
        if changes.get("sync_calendar_id"):
            changes["sync_calendar_id"] = _writable(calendars, changes["sync_calendar_id"], address)
        else:
            changes["sync_calendar_id"] = _default_calendar(calendars, address)
        # The room (or calendar) answered: whatever refusal was recorded before no longer holds.
        changes.update(status=CONNECTED, last_error_code=None, last_error_message=None, last_error_at=None)

    def update(self, system: str, kind: str, subject_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Choose the sync resource, calendars, and for spaces the location and two-way switch. Chosen calendars
        are checked against the mailbox: they must exist and be writable (the free/busy one readable). In app
        mode the checks use the app's token, and a new room gets its default calendar unless one is chosen."""
        connection = self._access.require(system, kind, subject_id)
        allowed = {"sync_resource", "sync_calendar_id", "freebusy_calendar_id", "location", "two_way"}
        if kind == "space":
            allowed -= {"freebusy_calendar_id"}
        else:
            allowed -= {"location", "two_way"}
        unknown = set(body) - allowed
        if "mode" in unknown:
            raise ValidationFailed("mode", "cannot be changed by PATCH: PUT the connection with mode app, or sign "
                                           "in again (POST .../authorize) for a delegated one")
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

        if connection.is_app:
            self._check_app_choices(connection, changes)
        else:
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
        if saved.is_app and changes.get("status") == CONNECTED:
            self._access.alerts_cleared(saved)
        if self._on_change is not None:
            self._on_change(saved)
        return to_json(saved, True)

    def _verify(self, token: TokenSource, connection: Connection, checks: list[tuple[str, str]]) -> None:
        mailbox = _mailbox(connection)
        calendars = {c["id"]: c for c in self._list(token, mailbox, connection)}
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
        if self._before_remove is not None:
            self._before_remove(connection)
        self._tokens.erase(connection)
        self._connections.delete(system, connection.row_key())
        if self._on_change is not None:
            connection.two_way = False
            self._on_change(connection)
        return {"removed": True, "events_removed": removed_events}


def _calendars_json(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": c["id"], "name": c.get("name"), "can_edit": bool(c.get("canEdit")),
             "is_default": bool(c.get("isDefaultCalendar")),
             "owner": (c.get("owner") or {}).get("address")} for c in raw]


def _writable(calendars: list[dict[str, Any]], calendar_id: str, address: str) -> str:
    calendar = next((c for c in calendars if c["id"] == calendar_id), None)
    if calendar is None:
        raise CalendarNotFound(f"sync_calendar_id: no calendar with that ID in {address}")
    if not calendar["can_edit"]:
        raise NoMailboxAccess(f"sync_calendar_id: the app cannot write to that calendar of {address}")
    return calendar_id


def _default_calendar(calendars: list[dict[str, Any]], address: str) -> str:
    """The room's default calendar (where Outlook books it), else the first writable one."""
    writable = [c for c in calendars if c["can_edit"]]
    chosen = next((c for c in writable if c["is_default"]), writable[0] if writable else None)
    if chosen is None:
        raise NoMailboxAccess(f"the app can read but not write the calendars of {address}: the role assignment "
                              "must be 'Application Calendars.ReadWrite', not 'Application Calendars.Read'")
    return str(chosen["id"])


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
        "mode": connection.mode,
        "status": status,
        # App mode: nobody signed in; the app's own identity reaches the room.
        "account": None if connection.is_app else {
            "username": connection.account_username, "name": connection.account_name,
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
    elif status == ACCESS_DENIED:
        data["next_step"] = ("an Exchange administrator must bring the room back into the app's management scope "
                             "(see last_error); sync resumes by itself once Microsoft Graph lets the app in, or "
                             "GET .../calendars to check now")
    return data

