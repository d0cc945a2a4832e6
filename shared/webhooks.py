"""Signed webhooks: the changes the pull publishes to a room's feed, POSTed to the host app as well.

When a system's integration has a `webhook_url` (and a signing secret, which the host chooses and which is kept in
Key Vault), every batch of feed entries a pull commits is queued once on `webhook-delivery` and POSTed from there:

    POST <webhook_url>
    Content-Type: application/json
    X-Webhook-Id: <delivery id>          unique per POSTed batch, the same on every retry of that batch
    X-Webhook-Timestamp: <unix seconds>  when this attempt was signed
    X-Webhook-Signature: v1=<hex>        HMAC-SHA256(key = the webhook secret as UTF-8,
                                                     message = f"{timestamp}.".encode() + raw request body)

    {"system": "...", "space": "...", "changes": [<feed entry>, ...]}

Each change is exactly what `GET .../external-events` returns (`id` = "system:space:seq", `seq`, `type`,
`event_id`, `event`, `published_at`), at most `BATCH_SIZE` per POST.

To verify, the receiver takes the raw body bytes (before any JSON parsing), computes the HMAC above with its
copy of the secret, and compares it in constant time (`hmac.compare_digest`) with each `v1=` value of the
signature header (split on ","; there is one today, and accepting any lets a secret rotation send two). It
should refuse a timestamp more than 5 minutes from its own clock (a replayed or delayed request; a retry is
signed afresh), and answer a 2xx quickly once it has stored the changes.

Delivery is at least once and not necessarily in order: anything but a 2xx within `TIMEOUT_SECONDS` (redirects
are not followed; the URL's host is resolved and checked on every attempt, see shared/outbound.py) is retried
from the queue with exponential backoff and jitter (30 s, 1 min, 2 min, ... at most 1 h), with a fresh timestamp
and signature but the same `X-Webhook-Id` and the same changes. Receivers dedupe by change `id` (or delivery ID)
and order by `seq`. After `MAX_ATTEMPTS` failed attempts the batch is given up and a `webhook_failing` alert is
raised, naming only a coarse reason (`timeout`, `connection_refused`, `tls_error`, `http_4xx`, `http_5xx`,
`blocked_address`, `dns_failure`, ...); nothing is lost, since the feed keeps every change for the host to read
by cursor. The next successful delivery resolves the alert.

The secret and request signatures never appear in logs; neither does the webhook URL (it may carry a token in its
query, and is kept in Key Vault when it has one), only its host name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared import validation
from shared.alerts import WEBHOOK_FAILING, AlertService
from shared.clock import Clock, utcnow
from shared.errors import ValidationFailed
from shared.integrations import webhook_secret_name, webhook_url_name
from shared.models import Connection, FeedEntry, Integration, connection_partition
from shared.outbound import Outbound, Resolver, system_resolver
from shared.pull import feed_json
from shared.secrets import SecretStore
from shared.settings import Settings
from shared.storage.queues import QueueSender
from shared.storage.repositories import Repositories

log = logging.getLogger(__name__)

WEBHOOK_QUEUE = "webhook-delivery"
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
BATCH_SIZE = 100
TIMEOUT_SECONDS = 10.0
ALERT_SUBJECT = "integration"
SIGNATURE_VERSION = "v1"
USER_AGENT = "outlook-calendar-sync-webhooks/1"


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}."` followed by the raw body, keyed with the secret's UTF-8 bytes."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_client(settings: Settings, resolver: Resolver = system_resolver) -> Outbound:
    """Apart from the session that talks to Microsoft: the caller chose this URL, so it gets the SSRF checks."""
    return Outbound.from_settings(settings, resolver=resolver, user_agent=USER_AGENT)


class WebhookSecrets:
    """Signing secrets and full URLs by Key Vault version, cached in memory (a version's value never changes)."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store
        self._values: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def value(self, integration: Integration) -> str:
        return self._get((webhook_secret_name(integration.system), integration.webhook_secret_version))

    def url(self, integration: Integration) -> str:
        """The URL to POST to: the row's, or the full one from Key Vault when the row shows it redacted."""
        if not integration.webhook_url_version:
            return str(integration.webhook_url)
        return self._get((webhook_url_name(integration.system), integration.webhook_url_version))

    def _get(self, key: tuple[str, str]) -> str:
        with self._lock:
            cached = self._values.get(key)
        if cached is not None:
            return cached
        value = self._store.get(*key).value
        with self._lock:
            self._values[key] = value
        return value


@dataclass
class Attempt:
    ok: bool
    status: int | None  # the HTTP status, None when there was no answer
    problem: str  # for logs and the alert, coarse: "http_5xx", "timeout", "blocked_address", ...


@dataclass(frozen=True)
class Delivery:
    """One `webhook-delivery` queue message."""

    system: str
    space: str
    from_seq: int
    to_seq: int
    attempt: int
    delivery: str

    @classmethod
    def parse(cls, message: dict[str, Any]) -> Delivery:
        if not isinstance(message, dict):
            raise ValidationFailed("message", "must be a JSON object")
        system = validation.identifier(validation.field(message, "system", str), "system")
        space = validation.identifier(validation.field(message, "space", str), "space")
        from_seq = validation.field(message, "from_seq", int)
        to_seq = validation.field(message, "to_seq", int)
        attempt = validation.field(message, "attempt", int, required=False, default=0)
        delivery = validation.field(message, "delivery", str, required=False) or uuid.uuid4().hex
        if from_seq < 1 or to_seq < from_seq or attempt < 0:
            raise ValidationFailed("from_seq", "needs 1 <= from_seq <= to_seq and attempt >= 0")
        return cls(system, space, from_seq, to_seq, attempt, delivery[:64])

    def to_message(self) -> dict[str, Any]:
        return {"system": self.system, "space": self.space, "from_seq": self.from_seq, "to_seq": self.to_seq,
                "attempt": self.attempt, "delivery": self.delivery}


class WebhookService:
    def __init__(self, repos: Repositories, store: SecretStore, queues: QueueSender, alerts: AlertService,
                 client: Outbound, *, backoff_base: float = BACKOFF_BASE_SECONDS,
                 backoff_cap: float = BACKOFF_CAP_SECONDS, max_attempts: int = MAX_ATTEMPTS,
                 batch_size: int = BATCH_SIZE, timeout: float = TIMEOUT_SECONDS, clock: Clock = utcnow) -> None:
        if max_attempts < 1 or batch_size < 1 or backoff_base < 0 or backoff_cap < 0:
            raise ValueError("max_attempts and batch_size must be positive, the backoff not negative")
        self._repos = repos
        self._secrets = WebhookSecrets(store)
        self._queues = queues
        self._alerts = alerts
        self._client = client
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self._timeout = timeout
        self._clock = clock

    # --- from the pull ---------------------------------------------------------------------------------------------

    def on_published(self, connection: Connection, first_seq: int, last_seq: int,
                     integration: Integration | None = None) -> None:
        """PullService's hook, called once entries `first_seq`..`last_seq` of a room's feed are committed: queue one
        delivery when the system has a webhook (the pull passes the integration it read, else it is read). Never
        raises: the pull is already committed, and the feed keeps the changes whatever happens here."""
        try:
            if integration is None or integration.system != connection.system:
                integration = self._repos.integrations.find(connection.system)
            if not _active(integration):
                return
            message = Delivery(connection.system, connection.subject_id, first_seq, last_seq, 0, uuid.uuid4().hex)
            self._queues.send(WEBHOOK_QUEUE, message.to_message())
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("webhook delivery of %s/%s seq %d-%d not queued (%s); the changes stay in the feed",
                        connection.system, connection.subject_id, first_seq, last_seq, type(exc).__name__)

    # --- the queue worker ------------------------------------------------------------------------------------------

    def process(self, message: dict[str, Any]) -> str:
        """Deliver one queued batch range. A failed POST re-queues the rest of the range with a delay (the message
        being processed completes normally); only storage or Key Vault trouble raises, so the host retries."""
        job = Delivery.parse(message)
        integration = self._repos.integrations.find(job.system)
        if integration is None or not _active(integration):
            return "dropped: the system has no active webhook"
        if not integration.webhook_secret_version:
            log.error("webhook of system %s has no signing secret; delivery dropped", job.system)
            return "dropped: no signing secret"
        secret = self._secrets.value(integration)
        url = self._secrets.url(integration)
        partition = connection_partition(job.system, "space", job.space)
        cursor, sent, posts = job.from_seq - 1, 0, 0
        while cursor < job.to_seq:
            page = self._repos.feed.after(partition, cursor, min(self.batch_size, job.to_seq - cursor))
            entries = [e for e in page if e.seq <= job.to_seq and e.system == job.system and e.subject_id == job.space]
            if not entries:
                break
            delivery_id = f"{job.delivery}-{entries[0].seq}"
            attempt = self._post(integration, url, secret, job, entries, delivery_id)
            if not attempt.ok:
                return self._failed(job, entries[0].seq, attempt, integration)
            posts, sent, cursor = posts + 1, sent + len(entries), entries[-1].seq
        if posts:
            self._alerts.resolve(job.system, WEBHOOK_FAILING, ALERT_SUBJECT)
        return f"delivered {sent} change(s) in {posts} POST(s)" if posts else "nothing to deliver"

    def _post(self, integration: Integration, url: str, secret: str, job: Delivery, entries: list[FeedEntry],
              delivery_id: str) -> Attempt:
        body = json.dumps({"system": job.system, "space": job.space, "changes": [feed_json(e) for e in entries]},
                          separators=(",", ":")).encode("utf-8")
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Id": delivery_id,
            "X-Webhook-Timestamp": str(timestamp),
            "X-Webhook-Signature": f"{SIGNATURE_VERSION}={signature(secret, timestamp, body)}",
        }
        answer = self._client.post(url, body, headers, self._timeout)  # checks the address again: DNS may change
        outcome = Attempt(answer.ok, answer.status, answer.reason)
        log.info("webhook %s to %s for %s/%s seq %d-%d (attempt %d): %s", delivery_id, _host(integration),
                 job.system, job.space, entries[0].seq, entries[-1].seq, job.attempt + 1,
                 "delivered" if outcome.ok else outcome.problem)
        return outcome

    def _failed(self, job: Delivery, from_seq: int, attempt: Attempt, integration: Integration) -> str:
        attempts = job.attempt + 1
        if attempts >= self.max_attempts:
            self._alerts.raise_alert(
                job.system, WEBHOOK_FAILING, ALERT_SUBJECT,
                f"Webhook deliveries to {_host(integration)} failed {attempts} times in a row (last answer: "
                f"{attempt.problem}); gave up on changes {from_seq}-{job.to_seq} of space {job.space}. Nothing is "
                "lost: every change stays in the space's external-events feed, readable by cursor; webhooks resume "
                "with the next change once the endpoint answers 2xx.")
            log.warning("webhook %s-%d for %s/%s given up after %d attempts (%s)", job.delivery, from_seq,
                        job.system, job.space, attempts, attempt.problem)
            return f"given up after {attempts} attempts ({attempt.problem})"
        delay = self.backoff(attempts)
        retry = Delivery(job.system, job.space, from_seq, job.to_seq, attempts, job.delivery)
        self._queues.send(WEBHOOK_QUEUE, retry.to_message(), delay_seconds=delay)  # raises: the host retries
        return f"{attempt.problem}; attempt {attempts + 1} in {delay} s"

    def backoff(self, retry: int) -> int:
        """Seconds before retry number `retry` (1, 2, ...): base, 2 x base, 4 x base ... capped, with +-20% jitter
        so endpoints coming back are not hit by every queued batch at once."""
        base = min(self.backoff_cap, self.backoff_base * 2 ** min(retry - 1, 30))
        return max(0, round(min(self.backoff_cap, base * random.uniform(0.8, 1.2))))  # noqa: S311  # nosec B311 - jitter


def _active(integration: Integration | None) -> bool:
    return bool(integration is not None and integration.enabled and integration.webhook_url)


def _host(integration: Integration) -> str:
    return urlsplit(str(integration.webhook_url)).hostname or "?"
