"""Change notifications, the receiving side: what the anonymous notification endpoint does with a request.

Microsoft Graph's protocol ("Receive change notifications through webhooks",
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks, and "Reduce missing subscriptions and
change notifications", https://learn.microsoft.com/graph/change-notifications-lifecycle-events):

- Validation: when a subscription is created, Graph POSTs `?validationToken=<opaque>` to both the notification and
  the lifecycle URL and wants, within 10 seconds, 200 `text/plain` with the URL-decoded token. Graph "never sends
  any value containing HTML or JavaScript code", so only bounded plain text is echoed (anything else is 400): the
  endpoint cannot be used to reflect markup.
- Notifications: `{"value": [changeNotification, ...]}`, possibly of several subscriptions. Graph wants a 2xx
  within 3 seconds (else it retries for up to 4 hours); work that takes longer is persisted and answered 202, and
  a notification that could not be persisted is answered 5xx so that Graph retries. Each notification's
  `clientState` must match its subscription's; one that does not "may have been sent by a rogue actor".

Here a notification only says "pull this room now": the delta pull (shared/pull.py) stays the source of truth, so a
notification carries no data the product trusts. Each accepted notification of a room queues one coalesced pull
(`PullCoalescer`); lifecycle events that need Graph calls go to the `subscription-work` queue (shared/subscriptions.py
handles them). Forged or malformed notifications are ignored and counted (`counters()`), never answered 500, and no
clientState is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from shared.clock import Clock, utcnow
from shared.errors import ConcurrencyConflict, DomainError, PayloadTooLarge, ValidationFailed
from shared.http import parse_json_body
from shared.models import SubscriptionLookup
from shared.pull import PULL_QUEUE
from shared.storage.queues import QueueSender
from shared.storage.repositories import SubscriptionLookups

log = logging.getLogger(__name__)

LIFECYCLE_QUEUE = "subscription-work"
MAX_BODY_BYTES = 1024 * 1024  # a notification is about 1 KB; Graph batches some, never megabytes
MAX_SUBSCRIPTIONS_PER_REQUEST = 200  # distinct subscriptions looked up per request (a table read each)
HANDLER_THREADS = 8  # subscriptions of one request handled at once (storage round trips, not CPU)
MAX_VALIDATION_TOKEN = 1024
MAX_CLIENT_STATE = 255  # "The maximum length is 255 characters" (changeNotification resource)
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
# A pull already queued absorbs a notification only while it is at least this far from starting, so instances whose
# clocks differ a little never absorb a notification into a pull that has already read Graph.
COALESCE_MARGIN = timedelta(milliseconds=250)

# Graph's subscription IDs are GUIDs; anything that could not be a table key is refused before a lookup.
_SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# Printable ASCII without what could start markup or an attribute in an HTML context.
_PLAIN_TOKEN = re.compile(rf"[\x20-\x7e]{{1,{MAX_VALIDATION_TOKEN}}}")
_MARKUP = set("<>&\"'`")


def client_state_digest(client_state: str) -> str:
    """What is stored of a subscription's clientState: its SHA-256 (the secret itself is random and never kept)."""
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


def validation_answer(token: str) -> str:
    """The body of the validation handshake's 200 text/plain answer: the token, when it is bounded plain text."""
    if not _PLAIN_TOKEN.fullmatch(token) or _MARKUP & set(token):
        raise ValidationFailed("validationToken", f"must be 1-{MAX_VALIDATION_TOKEN} printable ASCII characters "
                                                  "without markup")
    return token


class NotificationCounters:
    """What this instance received and what it did with it (per process; each ignored notification is also in
    the log line of its request, without secrets)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, count: int = 1) -> None:
        if count:
            with self._lock:
                self._counts[name] += count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class PullCoalescer:
    """Queues a pull of a room for a burst of its notifications, once, safely across instances.

    The subscription's lookup row holds `pull_due_at`, when the pull queued for it will start: the queue message is
    sent with that visibility delay (PUSH_COALESCE_SECONDS), so no worker can run it earlier. A notification that
    finds a pull due later than now (by a margin) is absorbed: that pull has not read Graph yet, so it sees the
    change. Otherwise the notification claims the row (ETag: of several instances claiming at once, one wins and
    the others reread and are absorbed) and sends the message. A change made while a pull runs is thus never lost:
    its notification finds no pull due in the future and queues the next one. The queue send follows the claim; if
    it fails the claim is taken back and the error propagates (503, so Graph delivers the notification again).
    """

    def __init__(self, lookups: SubscriptionLookups, queues: QueueSender, *, window_seconds: int,
                 clock: Clock = utcnow) -> None:
        self._lookups = lookups
        self._queues = queues
        self._window = window_seconds
        self._clock = clock

    def request(self, lookup: SubscriptionLookup) -> bool:
        """Queue a pull of the lookup's room, or join the one already queued; True when a message was sent."""
        for _ in range(6):
            now = self._clock()
            if lookup.pull_due_at is not None and lookup.pull_due_at - now >= COALESCE_MARGIN:
                return False
            lookup.pull_due_at = now + timedelta(seconds=self._window)
            try:
                lookup = self._lookups.update(lookup)
            except ConcurrencyConflict:
                fresh = self._lookups.find(lookup.subscription_id)
                if fresh is None:
                    return False  # the subscription was replaced meanwhile; its successor's notifications pull
                lookup = fresh
                continue
            try:
                self._queues.send(PULL_QUEUE, {"system": lookup.system, "id": lookup.subject_id},
                                  delay_seconds=self._window)
            except DomainError:
                lookup.pull_due_at = None
                try:
                    self._lookups.update(lookup)
                except DomainError:
                    log.warning("could not take back the pull claim of %s/%s", lookup.system, lookup.subject_id)
                raise
            return True
        return False  # others kept claiming it: their pull is queued


class NotificationService:
    def __init__(self, lookups: SubscriptionLookups, queues: QueueSender, pulls: PullCoalescer) -> None:
        self._lookups = lookups
        self._queues = queues
        self._pulls = pulls
        self._pool = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="notifications")
        self.counters = NotificationCounters()

    def receive(self, body: bytes, content_type: str | None = "application/json") -> dict[str, int]:
        """Handle one POST of change or lifecycle notifications (either URL takes both kinds); answers what was
        done. A malformed or oversized body is refused (400, 413) and counted; each notification in it that does
        not check out is ignored and counted."""
        counts: Counter[str] = Counter()
        try:
            items = self._parse(body, content_type)
            by_subscription: dict[str, list[dict[str, Any]]] = {}
            for item in items:
                subscription_id = self._well_formed(item)
                if subscription_id is None:
                    counts["ignored_malformed"] += 1
                    continue
                if subscription_id not in by_subscription and len(by_subscription) >= MAX_SUBSCRIPTIONS_PER_REQUEST:
                    counts["ignored_over_limit"] += 1
                    continue
                by_subscription.setdefault(subscription_id, []).append(item)
            if len(by_subscription) <= 2:
                outcomes = [self._handle(sid, batch) for sid, batch in by_subscription.items()]
            else:  # one POST holds up to 100 notifications (of any subscriptions); Graph waits 3 s at most
                outcomes = list(self._pool.map(lambda pair: self._handle(*pair), by_subscription.items()))
            for outcome in outcomes:
                counts.update(outcome)
        finally:
            for name, count in counts.items():
                self.counters.add(name, count)
            ignored = {name: count for name, count in counts.items() if name.startswith("ignored_") and count}
            if ignored:
                log.warning("change notifications ignored: %s (accepted %d)",
                            ", ".join(f"{name[8:]} {count}" for name, count in sorted(ignored.items())),
                            counts["accepted"])
        return dict(counts)

    # --- parsing -------------------------------------------------------------------------------------------------

    def _parse(self, body: bytes, content_type: str | None) -> list[Any]:
        """The notifications of a body, with the API's own checks on JSON (size, media type, depth, encodable
        text: shared/http.py)."""
        try:
            data = parse_json_body(body, content_type, MAX_BODY_BYTES)
        except PayloadTooLarge:
            self.counters.add("ignored_too_large")
            raise
        except DomainError:
            self.counters.add("ignored_malformed")
            raise
        if not isinstance(data.get("value"), list):
            self.counters.add("ignored_malformed")
            raise ValidationFailed("value", "must be the list of change notifications")
        return list(data["value"])

    @staticmethod
    def _well_formed(item: Any) -> str | None:
        """The notification's subscription ID when it has the shape Graph sends, else None."""
        if not isinstance(item, dict):
            return None
        subscription_id, client_state = item.get("subscriptionId"), item.get("clientState")
        if not isinstance(subscription_id, str) or not _SUBSCRIPTION_ID.fullmatch(subscription_id):
            return None
        if not isinstance(client_state, str) or not 0 < len(client_state) <= MAX_CLIENT_STATE:
            return None
        change, event = item.get("changeType"), item.get("lifecycleEvent")
        if (change in CHANGE_TYPES) == (event in LIFECYCLE_EVENTS):  # exactly one of the two, with a known value
            return None
        return subscription_id.lower()

    # --- acting ----------------------------------------------------------------------------------------------------

    def _handle(self, subscription_id: str, notifications: list[dict[str, Any]]) -> Counter[str]:
        counts: Counter[str] = Counter()
        lookup = self._lookups.find(subscription_id)
        if lookup is None:
            counts["ignored_unknown_subscription"] += len(notifications)
            return counts
        genuine = [n for n in notifications if _client_state_matches(n["clientState"], lookup.client_state_sha256)]
        if len(genuine) < len(notifications):
            counts["ignored_client_state_mismatch"] += len(notifications) - len(genuine)
        if not genuine:
            return counts
        counts["accepted"] += len(genuine)
        events = {n["lifecycleEvent"] for n in genuine if n.get("lifecycleEvent")}
        changes = sum(1 for n in genuine if n.get("changeType"))
        for event in sorted(events):
            counts[f"lifecycle_{event}"] += 1
        for event in sorted(events - {"missed"}):  # these need Graph calls: not within Graph's 3 seconds
            self._queues.send(LIFECYCLE_QUEUE, {"op": "lifecycle", "subscription_id": subscription_id,
                                                "event": event})
        if not changes and "missed" not in events:
            return counts
        if lookup.kind != "space":
            # A user's calendar: nothing here caches it yet (free/busy is read live), so the notification is
            # only counted.
            counts["user_changes"] += changes
            return counts
        counts["pulls_queued" if self._pulls.request(lookup) else "pulls_coalesced"] += 1
        return counts


def _client_state_matches(received: str, digest: str) -> bool:
    return hmac.compare_digest(client_state_digest(received), digest)
