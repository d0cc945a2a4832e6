"""Delivering change and lifecycle notifications to webhook endpoints, the way Microsoft Graph does.

Graph POSTs a `{"value": [...]}` collection (several notifications, of several subscriptions, may share one POST)
to the subscription's notificationUrl over HTTPS; the endpoint must answer 2xx within 3 seconds, otherwise Graph
retries "multiple times, for up to 4 hours" and then discards the notification; endpoints that answer slowly are
throttled (delayed by 10 minutes) and, past 15% slow answers, dropped
(https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#throttling).

Delivery never runs in the Graph request that caused it: a write only queues (under the store's lock), and one
worker thread hands due notifications to a small pool of senders, at most one POST in flight per endpoint so an
endpoint sees its notifications in order unless a fault reorders them. Times (latency, retries, the 4 hours, the
throttling windows) are on the simulator's clock, so advancing it makes retries due and gives up on stale ones.

Faults, seeded for repeatability, model what an endpoint must survive: lost notifications, duplicates, reordering
within a window, extra latency. They apply to change notifications only; lifecycle notifications are how an app
learns it missed something, so they are always delivered.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from simulator.core import Simulator

log = logging.getLogger(__name__)

PREFIX = "graph.notifications."
# https://learn.microsoft.com/graph/change-notifications-delivery-webhooks: "If Microsoft Graph doesn't receive a 2xx
# class code within 3 seconds, it tries to resend the change notification multiple times, for up to 4 hours".
DELIVERY_TIMEOUT = 3.0
RETRY_FOR = 4 * 3600.0
# Same page, Throttling: "If the publishing time is greater than 2900 ms, the response is considered slow"; 100
# notifications before judging; >= 10% slow: throttled, notifications delayed and failed ones retried in 10
# minutes; >= 15%: dropped; the counts are flushed every 10 minutes.
SLOW_SHARE_OF_TIMEOUT = 2.9 / 3.0
THROTTLE_AFTER = 100
THROTTLE_SLOW_SHARE = 0.10
DROP_SLOW_SHARE = 0.15
THROTTLE_WINDOW = 600.0
THROTTLE_DELAY = 600.0
# The docs give no schedule for "multiple times": exponential from 1 s, capped at the 10 minutes of a throttled
# endpoint's retries.
RETRY_BASE = 1.0
RETRY_CAP = 600.0
# https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation: the client
# "must respond ... within 10 seconds".
VALIDATION_TIMEOUT = 10.0
DEFAULT_LATENCY = 1.0
# With the reorder fault, notifications queued within this long of each other are held together and leave in a
# seeded random order, one per POST.
REORDER_WINDOW = 0.5
MAX_PER_POST = 100
# Notifications of one endpoint due within this long of the first due one leave with it, in one POST: "When many
# changes occur, Microsoft Graph may send multiple notifications ... in the same POST request" (webhooks page).
BATCH_WINDOW = 0.2
SENDERS = 8
_IDLE_EXIT = 2.0  # the worker ends after this long with nothing to do (and starts again on demand)


@dataclass
class NotificationFaults:
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder: bool = False
    extra_latency_seconds: float = 0.0

    def check(self) -> None:
        for name in ("drop_rate", "duplicate_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if float(self.extra_latency_seconds) < 0:
            raise ValueError("extra_latency_seconds must not be negative")


@dataclass
class Delivery:
    """One notification on its way to one URL."""

    seq: int
    url: str
    body: dict[str, Any]
    subscription_id: str
    lifecycle: bool
    due: float  # simulator clock
    first_try: float | None = None
    attempts: int = 0
    key: float = 0.0  # the reorder fault's shuffle: order within a window
    throttled: bool = False


@dataclass
class _Endpoint:
    """Slow-answer statistics of one notification URL, per 10-minute window."""

    window_start: float
    count: int = 0
    slow: int = 0

    def state(self) -> str:
        if self.count < THROTTLE_AFTER:
            return "ok"
        share = self.slow / self.count
        return "dropping" if share >= DROP_SLOW_SHARE else ("throttled" if share >= THROTTLE_SLOW_SHARE else "ok")


@dataclass
class Timeouts:
    validation_seconds: float = VALIDATION_TIMEOUT
    delivery_seconds: float = DELIVERY_TIMEOUT


class ValidationFailed(Exception):
    """The endpoint failed the validation handshake; the message is Graph's."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


@dataclass
class Notifier:
    """The delivery queue of one Graph state. `is_live(subscription_id)` says whether a change notification may
    still go out (its subscription exists and has not expired); `tick(now)` runs the subscriptions' own
    housekeeping (expiry, reauthorization challenges) on every round of the worker; `has_work()` keeps the
    worker alive while there are subscriptions to look after."""

    sim: Simulator
    is_live: Callable[[str], bool]
    tick: Callable[[float], None]
    has_work: Callable[[], bool]
    latency: float = DEFAULT_LATENCY
    faults: NotificationFaults = field(default_factory=NotificationFaults)
    timeouts: Timeouts = field(default_factory=Timeouts)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[Delivery] = []
        self._busy: set[str] = set()  # URLs with a POST in flight
        self._endpoints: dict[str, _Endpoint] = {}
        self._seq = itertools.count(1)
        self._rng = random.Random()  # nosec B311 - fault dice, not security
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._local = threading.local()
        self._window_due: float | None = None

    # --- configuration --------------------------------------------------------------------------------------------

    def set_faults(self, faults: NotificationFaults, seed: int | None) -> None:
        faults.check()
        with self._cond:
            self.faults = faults
            if seed is not None:
                self._rng.seed(seed)

    def set_latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the latency must not be negative")
        with self._cond:
            self.latency = float(seconds)

    def set_timeouts(self, validation_seconds: float | None, delivery_seconds: float | None) -> Timeouts:
        with self._cond:
            if validation_seconds is not None:
                if not 0 < validation_seconds <= VALIDATION_TIMEOUT:
                    raise ValueError(f"validation_seconds must be in (0, {VALIDATION_TIMEOUT}]")
                self.timeouts.validation_seconds = float(validation_seconds)
            if delivery_seconds is not None:
                if not 0 < delivery_seconds <= DELIVERY_TIMEOUT:
                    raise ValueError(f"delivery_seconds must be in (0, {DELIVERY_TIMEOUT}]")
                self.timeouts.delivery_seconds = float(delivery_seconds)
            return Timeouts(**asdict(self.timeouts))

    def reset_settings(self) -> None:
        with self._cond:
            self.latency, self.faults, self.timeouts = DEFAULT_LATENCY, NotificationFaults(), Timeouts()

    def settings(self) -> dict[str, Any]:
        with self._cond:
            return {"latency_seconds": self.latency, "faults": asdict(self.faults), "timeouts": asdict(self.timeouts)}

    # --- queueing -------------------------------------------------------------------------------------------------

    def enqueue(self, url: str, body: dict[str, Any], subscription_id: str, *, lifecycle: bool = False) -> None:
        """Queue one notification (never blocks on the network; safe under the store's lock)."""
        counters = self.sim.counters
        now = self.sim.clock.time()
        with self._cond:
            if self._closed:
                return
            copies = 1
            if not lifecycle:
                if self.faults.drop_rate and self._rng.random() < self.faults.drop_rate:
                    counters.incr(PREFIX + "dropped")
                    return
                if self.faults.duplicate_rate and self._rng.random() < self.faults.duplicate_rate:
                    counters.incr(PREFIX + "duplicated")
                    copies = 2
            for _ in range(copies):
                due, key = now + self.latency, 0.0
                if not lifecycle:
                    if self.faults.extra_latency_seconds:
                        due += self._rng.uniform(0, self.faults.extra_latency_seconds)
                    if self.faults.reorder:
                        if self._window_due is None or due > self._window_due:
                            self._window_due = due + REORDER_WINDOW
                        due, key = self._window_due, self._rng.random()
                self._pending.append(Delivery(next(self._seq), url, body, subscription_id, lifecycle, due, key=key))
            counters.incr(PREFIX + "queued", copies)
            self._ensure_worker()
            self._cond.notify_all()

    def wake(self) -> None:
        """Make sure the worker runs (a subscription now exists to look after)."""
        with self._cond:
            if not self._closed:
                self._ensure_worker()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._busy)

    def flush(self, timeout: float) -> dict[str, Any]:
        """Wait (real time) until nothing is queued or in flight; answers whether it got there."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(timeout=min(left, 0.05))
            return {"flushed": not (self._pending or self._busy), "pending": len(self._pending),
                    "in_flight": len(self._busy)}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
            thread, pool = self._thread, self._pool
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # --- the validation handshake ---------------------------------------------------------------------------------

    def validate(self, url: str, token: str) -> None:
        """POST `url?validationToken=...` and check the answer as Graph does; raises ValidationFailed.

        https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation: a POST
        with `Content-Type: text/plain; charset=utf-8`; the answer must come within 10 seconds with 200 OK,
        `text/plain` and the URL-decoded token as its body ("If the client returns an encoded validation token, the
        validation fails")."""
        limit = self.timeouts.validation_seconds
        target = url + ("&" if "?" in url else "?") + "validationToken=" + quote(token, safe="")
        self.sim.counters.incr(PREFIX + "validations")
        started = time.monotonic()
        try:
            response = self._session().post(target, data=b"", timeout=(limit, limit), verify=self._verify(),
                                            headers={"Content-Type": "text/plain; charset=utf-8"})
        except requests.Timeout:
            raise ValidationFailed("Subscription validation request timed out.", timed_out=True) from None
        except requests.RequestException as exc:
            log.info("validation request to %s failed: %s", url, exc)
            raise ValidationFailed("Subscription validation request failed. Notification endpoint must respond "
                                   "with 200 OK to validation request.") from None
        if time.monotonic() - started > limit:
            raise ValidationFailed("Subscription validation request timed out.", timed_out=True)
        if response.status_code != 200:
            raise ValidationFailed("Subscription validation request failed. Notification endpoint must respond "
                                   "with 200 OK to validation request.")
        media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != "text/plain":
            raise ValidationFailed("Subscription validation request failed. Response must be of content type "
                                   "text/plain.")
        if response.content.decode("utf-8", errors="replace") != token:
            raise ValidationFailed("Subscription validation request failed. Response must exactly match "
                                   "validationToken query parameter.")

    # --- the worker -----------------------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        """Called with the condition held."""
        if self._thread is None or not self._thread.is_alive():
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="graph-notify-send")
            self._thread = threading.Thread(target=self._run, name="graph-notify", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            try:
                self.tick(self.sim.clock.time())
            except Exception:  # housekeeping must never kill delivery
                log.exception("subscription housekeeping failed")
            jobs = self._take_due()
            with self._cond:
                if self._closed:
                    return
                pool = self._pool
            if pool is not None:
                for url, chunks in jobs:
                    pool.submit(self._post_all, url, chunks)
            with self._cond:
                if self._closed:
                    return
                busy = bool(self._pending or self._busy or jobs)
                if not busy and not self.has_work():
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > _IDLE_EXIT:
                        self._thread = None
                        return
                else:
                    idle_since = None
                self._cond.wait(timeout=self._wait_for())

    def _wait_for(self) -> float:
        if not self._pending:
            return 0.05
        soonest = min(d.due for d in self._pending) - self.sim.clock.time()
        return max(0.0, min(0.05, soonest))

    def _take_due(self) -> list[tuple[str, list[list[Delivery]]]]:
        counters = self.sim.counters
        now = self.sim.clock.time()
        with self._cond:
            due: list[Delivery] = []
            keep: list[Delivery] = []
            ready = {d.url for d in self._pending if d.due <= now and d.url not in self._busy}
            for d in self._pending:
                (due if d.url in ready and d.due <= now + BATCH_WINDOW else keep).append(d)
            self._pending = keep
            by_url: dict[str, list[Delivery]] = {}
            for d in sorted(due, key=lambda d: (d.due, d.key, d.seq)):
                if not d.lifecycle and not self.is_live(d.subscription_id):
                    counters.incr(PREFIX + "discarded")  # the subscription expired or was deleted meanwhile
                    continue
                endpoint = self._endpoint(d.url, now)
                state = endpoint.state()
                if state == "dropping" and not d.lifecycle:
                    counters.incr(PREFIX + "throttle_dropped")
                    continue
                if state == "throttled" and not d.throttled:
                    d.throttled, d.due = True, now + THROTTLE_DELAY
                    counters.incr(PREFIX + "throttle_delayed")
                    self._pending.append(d)
                    continue
                by_url.setdefault(d.url, []).append(d)
            jobs = []
            for url, items in by_url.items():
                if self.faults.reorder:
                    chunks = [[d] for d in items]
                else:
                    chunks = [items[i:i + MAX_PER_POST] for i in range(0, len(items), MAX_PER_POST)]
                self._busy.add(url)
                jobs.append((url, chunks))
            return jobs

    def _endpoint(self, url: str, now: float) -> _Endpoint:
        endpoint = self._endpoints.get(url)
        if endpoint is None or now - endpoint.window_start >= THROTTLE_WINDOW:
            endpoint = self._endpoints[url] = _Endpoint(now)
        return endpoint

    def _post_all(self, url: str, chunks: list[list[Delivery]]) -> None:
        try:
            for chunk in chunks:
                self._post(url, chunk)
        except Exception:  # a sender bug must not leave the URL busy forever
            log.exception("notification delivery to %s failed", url)
        finally:
            with self._cond:
                self._busy.discard(url)
                self._cond.notify_all()

    def _post(self, url: str, chunk: list[Delivery]) -> None:
        counters = self.sim.counters
        limit = self.timeouts.delivery_seconds
        now = self.sim.clock.time()
        for d in chunk:
            d.first_try = d.first_try if d.first_try is not None else now
        started = time.monotonic()
        ok = False
        try:
            response = self._session().post(url, json={"value": [d.body for d in chunk]}, timeout=(limit, limit),
                                            verify=self._verify())
            ok = 200 <= response.status_code < 300 and time.monotonic() - started <= limit
        except requests.RequestException as exc:
            log.info("notification POST to %s failed: %s", url, exc)
        elapsed = time.monotonic() - started
        counters.incr(PREFIX + "posts")
        with self._cond:
            endpoint = self._endpoint(url, self.sim.clock.time())
            endpoint.count += len(chunk)
            if elapsed > limit * SLOW_SHARE_OF_TIMEOUT:
                endpoint.slow += len(chunk)
            state = endpoint.state()
            if ok:
                counters.incr(PREFIX + "sent", len(chunk))
                counters.incr(PREFIX + "lifecycle_sent", sum(1 for d in chunk if d.lifecycle))
                return
            counters.incr(PREFIX + "failed_posts")
            now = self.sim.clock.time()
            for d in chunk:
                if state == "dropping" and not d.lifecycle:
                    counters.incr(PREFIX + "throttle_dropped")
                    continue
                if d.first_try is not None and now - d.first_try >= RETRY_FOR:
                    counters.incr(PREFIX + "abandoned")
                    continue
                d.attempts += 1
                delay = THROTTLE_DELAY if state == "throttled" else min(RETRY_CAP, RETRY_BASE * 2 ** (d.attempts - 1))
                d.due = now + delay
                counters.incr(PREFIX + "retried")
                if not self._closed:
                    self._pending.append(d)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # REQUESTS_CA_BUNDLE and proxies from the environment must not apply
            self._local.session = session
        return session

    def _verify(self) -> str | bool:
        ca = self.sim.notification_ca
        return str(ca) if ca is not None else True
