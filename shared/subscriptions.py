"""Change notifications, the subscription side: a Microsoft Graph subscription on each eligible connection's events,
kept alive, replaced when Graph removes it, and dropped with its connection.

Which connections ("Change notifications for Outlook resources", https://learn.microsoft.com/graph/outlook-change-
notifications-overview; "Create subscription", https://learn.microsoft.com/graph/api/subscription-post-subscriptions):
- a room in application mode with two-way sync: `/users/{room}/events`, so an Outlook booking is pulled in seconds.
  Delegated room connections get none: a delegated subscription reaches only the signed-in user's own mailbox
  (`Calendars.ReadWrite.Shared` does not support subscriptions); those rooms are pulled on PULL_SCHEDULE;
- a delegated user connection: `/me/events` (nothing caches a user's calendar yet, so its notifications are only
  counted; see shared/notifications.py).

Each subscription asks for `created,updated,deleted` without resource data, carries a `clientState` of 128 random
URL-safe characters (only its SHA-256 is stored, in the lookup row that notifications are checked against), both the
notification and the lifecycle URL (derived from NOTIFICATION_BASE_URL; Graph validates both when it creates the
subscription), and `Prefer: IdType="ImmutableId"` (every Graph request carries it, shared/graph/client.py; a
subscription keeps the ID format it was created with). Outlook event subscriptions without resource data live at most
10,080 minutes (under 7 days, https://learn.microsoft.com/graph/change-notifications-overview#subscription-lifetime);
they are created for just under that and renewed (PATCH expirationDateTime, which also reauthorizes them) by the
maintenance timer once fewer than RENEW_BEFORE remain; a renewal answered 404 (Graph removed it) recreates it and
pulls the room. Lifecycle events (https://learn.microsoft.com/graph/change-notifications-lifecycle-events):
`reauthorizationRequired` renews, `subscriptionRemoved` recreates and pulls, `missed` pulls.

Subscriptions follow connection changes through the connections service's `on_change` hook (composed with the pull
index's in shared/runtime.py), and the maintenance timer repairs what a hook missed (a connection authorized again,
a creation that failed), so nothing depends on one call succeeding. Failures never fail the caller's request: they are
recorded on the row, logged, and tried again with backoff, and until then the room is pulled on the normal schedule.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from shared.clock import Clock, utcnow
from shared.connections import ConnectionAccess
from shared.errors import AlreadyExists, ConcurrencyConflict, DomainError, ValidationFailed
from shared.graph.client import GraphClient, GraphError
from shared.integrations import IntegrationService
from shared.models import (
    CONNECTED,
    SUBSCRIPTION_ACTIVE,
    SUBSCRIPTION_FAILED,
    Connection,
    PullTarget,
    PushSubscription,
    SubscriptionLookup,
    SweepMark,
)
from shared.notifications import LIFECYCLE_EVENTS, PullCoalescer, client_state_digest
from shared.settings import Settings
from shared.storage.repositories import Repositories

log = logging.getLogger(__name__)

CHANGE_TYPES = "created,updated,deleted"
LIFETIME = timedelta(minutes=10_080 - 10)  # Graph's maximum for Outlook events, less room for clock differences
RENEW_BEFORE = timedelta(days=3)  # the hourly timer renews a subscription once fewer than this remain
RETRY_FIRST, RETRY_MAX = timedelta(minutes=15), timedelta(hours=12)  # backoff after failed attempts
MAINTAIN_THREADS = 8
CLIENT_STATE_BYTES = 96  # token_urlsafe(96): 128 characters, the most Graph takes (subscription resource)


class SubscriptionService:
    def __init__(self, repos: Repositories, access: ConnectionAccess, integrations: IntegrationService,
                 graph: GraphClient, pulls: PullCoalescer, settings: Settings, clock: Clock = utcnow) -> None:
        self._repos = repos
        self._access = access
        self._integrations = integrations
        self._graph = graph
        self._pulls = pulls
        self._settings = settings
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._settings.notification_url)

    # --- which connections -----------------------------------------------------------------------------------------

    @staticmethod
    def resource_for(connection: Connection) -> str | None:
        """The Graph resource to subscribe to for this connection, or None when it gets no subscription."""
        if connection.status != CONNECTED:
            return None
        application = getattr(connection, "mode", "delegated") == "app"
        if connection.kind == "space":
            if application and connection.two_way and connection.mailbox:
                return f"/users/{quote(connection.mailbox.lower(), safe='@')}/events"
            return None
        return None if application else "/me/events"

    def _wanted(self, connection: Connection, enabled_systems: dict[str, bool] | None = None) -> str | None:
        resource = self.resource_for(connection)
        if resource is None:
            return None
        cache = {} if enabled_systems is None else enabled_systems
        if connection.system not in cache:
            integration = self._repos.integrations.find(connection.system)
            cache[connection.system] = bool(integration and integration.enabled)
        return resource if cache[connection.system] else None

    # --- the connection hook -------------------------------------------------------------------------------------

    def on_change(self, connection: Connection) -> None:
        """The connections service's hook (after a PATCH, after a removal): bring the connection's subscription in
        line. Never fails the caller: a failure is recorded and the maintenance timer tries again."""
        if not self.enabled:
            return
        try:
            outcome = self.ensure(connection)
        except DomainError as exc:
            log.warning("subscription of %s/%s not updated: %s", connection.system, connection.row_key(), exc.code)
            return
        if outcome not in ("unchanged", "none"):
            log.info("subscription of %s/%s: %s", connection.system, connection.row_key(), outcome)

    def before_remove(self, connection: Connection) -> None:
        """The connections service's hook before a removal erases the tokens: a delegated user's subscription can
        be deleted at Graph only while the user's token exists (afterwards it would notify for up to 7 days)."""
        if not self.enabled:
            return
        row = self._repos.push_subscriptions.find(connection.system, connection.kind, connection.subject_id)
        if row is not None and row.subscription_id:
            self._delete_remote(connection, row.subscription_id)

    def ensure(self, connection: Connection) -> str:
        """Create, replace, renew or drop the connection's subscription as it now needs; answers what was done."""
        row = self._repos.push_subscriptions.find(connection.system, connection.kind, connection.subject_id)
        current = self._repos.connections.find(connection.system, connection.kind, connection.subject_id)
        if current is None:  # removed: `before_remove` deleted it at Graph while the tokens existed
            if row is None:
                return "none"
            self._drop(connection, row, remote=False)
            return "dropped"
        wanted = self._wanted(current)
        if wanted is None:
            if row is None:
                return "none"
            self._drop(current, row, remote=True)
            return "dropped"
        now = self._clock()
        if row is not None and row.resource == wanted and row.live(now):
            if row.expires_at is not None and row.expires_at - now < RENEW_BEFORE:
                return self._renew(current, row)
            return "unchanged"
        if row is not None and row.subscription_id:
            # Another mailbox, or a subscription whose renewal failed (it may still be live at Graph): replaced,
            # not left to notify until it expires. An expired one answers 404, which counts as deleted.
            self._delete_remote(current, row.subscription_id)
        return self._create(current, wanted, row)

    # --- Graph operations ----------------------------------------------------------------------------------------

    def _create(self, connection: Connection, resource: str, row: PushSubscription | None, *,
                pull_after: bool = False) -> str:
        now = self._clock()
        client_state = secrets.token_urlsafe(CLIENT_STATE_BYTES)
        body = {"changeType": CHANGE_TYPES, "notificationUrl": self._settings.notification_url,
                "lifecycleNotificationUrl": self._settings.lifecycle_notification_url, "resource": resource,
                "expirationDateTime": _graph_time(now + LIFETIME), "clientState": client_state,
                "latestSupportedTlsVersion": "v1_2"}
        try:
            created = self._access.run(connection, lambda token: self._graph.request(
                token, "POST", "/subscriptions", json=body))
            subscription_id = str((created or {}).get("id") or "").lower()
            if not subscription_id:
                raise GraphError(502, "missing_id", "the subscription Graph created has no id")
        except DomainError as exc:
            self._record_failure(connection, resource, row, exc)
            raise
        lookup = SubscriptionLookup(subscription_id=subscription_id, system=connection.system, kind=connection.kind,
                                    subject_id=connection.subject_id,
                                    client_state_sha256=client_state_digest(client_state))
        self._repos.subscription_lookups.upsert(lookup)
        previous = row.subscription_id if row is not None else ""
        saved = row or PushSubscription(system=connection.system, kind=connection.kind,
                                        subject_id=connection.subject_id)
        saved.resource, saved.subscription_id, saved.status = resource, subscription_id, SUBSCRIPTION_ACTIVE
        saved.expires_at = _parse_time((created or {}).get("expirationDateTime")) or now + LIFETIME
        saved.created_at = saved.renewed_at = now
        saved.failures, saved.last_error_code, saved.last_error_at = 0, None, None
        try:
            if saved.etag is None:
                self._repos.push_subscriptions.insert(saved)
            else:
                self._repos.push_subscriptions.update(saved)
        except (AlreadyExists, ConcurrencyConflict):
            # Another instance changed the row meanwhile (it made its own subscription): keep one, drop this one.
            self._delete_remote(connection, subscription_id)
            self._repos.subscription_lookups.delete(subscription_id, "lookup")
            return "lost_race"
        if previous and previous != subscription_id:
            self._repos.subscription_lookups.delete(previous, "lookup")
        if pull_after and connection.kind == "space":
            self._pulls.request(lookup)  # changes made while there was no subscription
        return "recreated" if previous else "created"

    def _renew(self, connection: Connection, row: PushSubscription) -> str:
        """PATCH a later expiration (this also reauthorizes the subscription); 404: Graph removed it, recreate."""
        now = self._clock()
        try:
            answer = self._access.run(connection, lambda token: self._graph.request(
                token, "PATCH", f"/subscriptions/{quote(row.subscription_id, safe='')}",
                json={"expirationDateTime": _graph_time(now + LIFETIME)}))
        except GraphError as exc:
            if exc.http_status == 404:
                return self._create(connection, row.resource, row, pull_after=True)
            self._record_failure(connection, row.resource, row, exc)
            raise
        except DomainError as exc:
            self._record_failure(connection, row.resource, row, exc)
            raise
        row.expires_at = _parse_time((answer or {}).get("expirationDateTime")) or now + LIFETIME
        row.renewed_at = now
        row.status, row.failures, row.last_error_code, row.last_error_at = SUBSCRIPTION_ACTIVE, 0, None, None
        try:
            self._repos.push_subscriptions.update(row)
        except ConcurrencyConflict:
            return "renewed"  # someone else changed the row (and so the subscription); theirs stands
        return "renewed"

    def _delete_remote(self, connection: Connection, subscription_id: str) -> None:
        try:
            self._access.run(connection, lambda token: self._graph.request(
                token, "DELETE", f"/subscriptions/{quote(subscription_id, safe='')}"))
        except GraphError as exc:
            if exc.http_status != 404:  # already gone counts as deleted
                log.warning("deleting subscription of %s/%s failed: %s", connection.system, connection.row_key(),
                            exc.graph_code)
        except DomainError as exc:  # no token any more (it expires on its own within 7 days)
            log.info("subscription of %s/%s left to expire: %s", connection.system, connection.row_key(), exc.code)

    def _drop(self, connection: Connection, row: PushSubscription, *, remote: bool) -> None:
        if row.subscription_id:
            if remote:
                self._delete_remote(connection, row.subscription_id)
            self._repos.subscription_lookups.delete(row.subscription_id, "lookup")
        self._repos.push_subscriptions.delete(row.partition_key(), row.row_key())

    def _record_failure(self, connection: Connection, resource: str, row: PushSubscription | None,
                        exc: DomainError) -> None:
        code = getattr(exc, "graph_code", None) or exc.microsoft_code or exc.code
        log.warning("subscription of %s/%s failed: %s", connection.system, connection.row_key(), code)
        failed = row or PushSubscription(system=connection.system, kind=connection.kind,
                                         subject_id=connection.subject_id)
        failed.resource, failed.status = resource, SUBSCRIPTION_FAILED
        failed.failures += 1
        failed.last_error_code, failed.last_error_at = str(code)[:100], self._clock()
        try:
            if failed.etag is None:
                self._repos.push_subscriptions.insert(failed)
            else:
                self._repos.push_subscriptions.update(failed)
        except (AlreadyExists, ConcurrencyConflict):
            pass  # another attempt wrote the row meanwhile; its outcome stands

    # --- lifecycle events (from the subscription-work queue) ------------------------------------------------------

    def process(self, message: Any) -> str:
        """A `subscription-work` message: `{"op": "lifecycle", "subscription_id", "event"}`."""
        if not isinstance(message, dict):
            raise ValidationFailed("message", "must be a JSON object")
        subscription_id, event = message.get("subscription_id"), message.get("event")
        if message.get("op") != "lifecycle" or not isinstance(subscription_id, str) or event not in LIFECYCLE_EVENTS \
                or not subscription_id or len(subscription_id) > 64 or not subscription_id.replace("-", "").isalnum():
            raise ValidationFailed("message", "is not a lifecycle event of a subscription")
        return self.handle_lifecycle(subscription_id, str(event))

    def handle_lifecycle(self, subscription_id: str, event: str) -> str:
        lookup = self._repos.subscription_lookups.find(subscription_id)
        if lookup is None:
            return "unknown_subscription"
        connection = self._repos.connections.find(lookup.system, lookup.kind, lookup.subject_id)
        row = self._repos.push_subscriptions.find(lookup.system, lookup.kind, lookup.subject_id)
        if row is None or row.subscription_id != subscription_id:
            self._repos.subscription_lookups.delete(subscription_id, "lookup")  # superseded
            return "stale"
        if connection is None or self._wanted(connection) != row.resource:
            self._drop(connection or _stub(lookup), row, remote=connection is not None)
            return "dropped"
        if event == "missed":
            if lookup.kind == "space":
                self._pulls.request(lookup)
            return "pulled"
        if event == "subscriptionRemoved":
            return self._create(connection, row.resource, row, pull_after=True)
        return self._renew(connection, row)  # reauthorizationRequired

    # --- the maintenance timer -----------------------------------------------------------------------------------

    def maintain(self, system: str | None = None) -> dict[str, int]:
        """Renew what expires soon, create what is missing or failed (with backoff), drop what is no longer
        wanted: every system's (the timer), or one system's (an operator repairing one institution). Reads the
        connection and subscription tables once; Graph calls run a few at a time."""
        if not self.enabled:
            return {}
        now = self._clock()
        subscriptions = self._repos.push_subscriptions
        connections = self._repos.connections
        rows = {(r.system, r.kind, r.subject_id): r
                for r in (subscriptions.partition(system) if system else subscriptions.query())}
        enabled: dict[str, bool] = {}
        work: list[tuple[str, Connection, PushSubscription | None]] = []
        for connection in connections.partition(system) if system else connections.query():
            row = rows.pop((connection.system, connection.kind, connection.subject_id), None)
            wanted = self._wanted(connection, enabled)
            if wanted is None:
                if row is not None:
                    work.append(("drop", connection, row))
            elif row is None or row.resource != wanted or (row.status == SUBSCRIPTION_ACTIVE and not row.live(now)):
                work.append(("ensure", connection, row))
            elif row.status == SUBSCRIPTION_FAILED:
                if row.last_error_at is None or now - row.last_error_at >= _backoff(row.failures):
                    work.append(("ensure", connection, row))
            elif row.expires_at is not None and row.expires_at - now < RENEW_BEFORE:
                work.append(("renew", connection, row))
        for row in rows.values():  # their connections are gone: forget them (Graph lets them expire)
            work.append(("forget", _stub_row(row), row))

        def run(job: tuple[str, Connection, PushSubscription | None]) -> str:
            action, connection, row = job
            try:
                if action == "renew" and row is not None:
                    return self._renew(connection, row)
                if action in ("drop", "forget") and row is not None:
                    self._drop(connection, row, remote=action == "drop")
                    return "dropped"
                return self.ensure(connection)
            except DomainError as exc:
                return f"failed:{exc.code}"

        outcomes: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=MAINTAIN_THREADS, thread_name_prefix="subscriptions") as pool:
            for outcome in pool.map(run, work):
                key = outcome.split(":")[0]
                outcomes[key] = outcomes.get(key, 0) + 1
        if outcomes:
            log.info("subscription maintenance: %s", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        return outcomes

    # --- the pull sweep --------------------------------------------------------------------------------------------

    def sweep_plan(self) -> Callable[[PullTarget], bool]:
        """For the pull timer (PullService.enqueue_all): which rooms this sweep pulls. A room with a live
        subscription is pulled by its notifications, so the sweep pulls it, as the safety net for lost
        notifications, once per PUSH_SWEEP_MINUTES only, in a slot of that cycle of its own (rooms spread over
        it); every other room on every tick. Only one row (the sweep mark) is written per sweep."""
        now = self._clock()
        mark = self._repos.sweep_marks.get("sweep", "mark")
        previous = mark.swept_at if mark is not None and mark.swept_at <= now else None
        self._repos.sweep_marks.upsert(SweepMark(swept_at=now))
        live = {(r.system, r.subject_id) for r in self._repos.push_subscriptions.query(
            "kind eq @kind and status eq @status", parameters={"kind": "space", "status": SUBSCRIPTION_ACTIVE})
            if r.live(now)}
        period = self._settings.push_sweep_minutes * 60

        def due(target: PullTarget) -> bool:
            if previous is None or (target.system, target.subject_id) not in live:
                return True
            offset = int(hashlib.sha256(f"{target.system}|{target.subject_id}".encode()).hexdigest()[:8], 16) % period
            slot_now = math.floor((now.timestamp() - offset) / period)
            return slot_now > math.floor((previous.timestamp() - offset) / period)

        return due


def _backoff(failures: int) -> timedelta:
    return min(RETRY_FIRST * 2 ** max(failures - 1, 0), RETRY_MAX)


def _stub(lookup: SubscriptionLookup) -> Connection:
    return Connection(system=lookup.system, kind=lookup.kind, subject_id=lookup.subject_id)


def _stub_row(row: PushSubscription) -> Connection:
    return Connection(system=row.system, kind=row.kind, subject_id=row.subject_id)


def _graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
