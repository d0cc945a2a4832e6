"""Outlook's per-app, per-mailbox throttling, so the app's concurrency limits and retry logic meet real limits.

Microsoft Graph service-specific throttling limits (Outlook service limits): per app ID and mailbox, 10,000 API
requests per 10 minutes and at most 4 concurrent requests; over either, 429 with `Retry-After`. Throttled
requests still count against the budget, so a client that hammers a throttled mailbox digs itself deeper.

A 429 is not advice: "When a throttling threshold is exceeded, Microsoft Graph limits any further requests from that
client app for some time" and "If the request fails again with a 429 error code, you are still being throttled"
(https://learn.microsoft.com/graph/throttling). So once a mailbox is throttled with `Retry-After` N (a budget
refusal, or an injected 429 standing for another burst), every request of that app to that mailbox before the N
seconds are up is refused again, with the remaining wait, and counted (Outlook service limits:
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits). A concurrency refusal is the exception:
its slot frees as soon as one of the four requests in flight ends, so it does not bar the mailbox.

Latency is injected while the request holds its in-flight slot: a slow Graph is exactly what makes a fifth
concurrent request collide with four unfinished ones.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from simulator.clock import Clock
from simulator.counters import Counters

DEFAULT_CONCURRENCY = 4
DEFAULT_BUDGET = 10_000
DEFAULT_WINDOW_SECONDS = 600.0


@dataclass
class ThrottleLimits:
    concurrency: int = DEFAULT_CONCURRENCY
    budget: int = DEFAULT_BUDGET
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    concurrency_retry_after: int = 1  # seconds Outlook tells a client to wait after a concurrency refusal
    enabled: bool = True


@dataclass
class Latency:
    fixed_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform in [0, jitter_ms)


@dataclass(frozen=True)
class Rejection:
    reason: str  # "concurrency", "budget" or "blocked" (sent before an earlier Retry-After was up)
    retry_after: int

    @property
    def message(self) -> str:
        if self.reason == "concurrency":
            return "Application is over its MailboxConcurrency limit."
        return "Application is over its MailboxRequestRate limit."


@dataclass
class _KeyState:
    in_flight: int = 0
    window_start: float = 0.0
    count: int = 0
    peak: int = 0
    blocked_until: float = 0.0  # simulated time before which every request is refused again


@dataclass
class Throttle:
    """Thread-safe admission control keyed by (client ID, mailbox)."""

    clock: Clock
    counters: Counters
    prefix: str = "graph"
    limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    latency: Latency = field(default_factory=Latency)
    mailbox_latency: dict[str, Latency] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], _KeyState] = {}
        self._rng = random.Random(self.seed)  # nosec B311 - simulated faults and jitter, not security

    def configure(
        self,
        *,
        concurrency: int | None = None,
        budget: int | None = None,
        window_seconds: float | None = None,
        concurrency_retry_after: int | None = None,
        enabled: bool | None = None,
    ) -> ThrottleLimits:
        with self._lock:
            if concurrency is not None:
                self.limits.concurrency = int(concurrency)
            if budget is not None:
                self.limits.budget = int(budget)
            if window_seconds is not None:
                self.limits.window_seconds = float(window_seconds)
            if concurrency_retry_after is not None:
                self.limits.concurrency_retry_after = int(concurrency_retry_after)
            if enabled is not None:
                self.limits.enabled = bool(enabled)
            return ThrottleLimits(**vars(self.limits))

    def set_latency(self, fixed_ms: float = 0.0, jitter_ms: float = 0.0, *, mailbox: str | None = None,
                    seed: int | None = None) -> None:
        with self._lock:
            value = Latency(float(fixed_ms), float(jitter_ms))
            if mailbox is None:
                self.latency = value
            else:
                self.mailbox_latency[mailbox.lower()] = value
            if seed is not None:
                self._rng.seed(seed)

    def reset(self) -> None:
        """Forget budgets and in-flight bookkeeping (not the configured limits); for tests between phases."""
        with self._lock:
            self._keys = {k: _KeyState(in_flight=s.in_flight) for k, s in self._keys.items() if s.in_flight}

    def _delay(self, mailbox: str) -> float:
        lat = self.mailbox_latency.get(mailbox.lower(), self.latency)
        if not lat.fixed_ms and not lat.jitter_ms:
            return 0.0
        return (lat.fixed_ms + self._rng.uniform(0.0, lat.jitter_ms)) / 1000.0

    def try_acquire(self, client_id: str, mailbox: str) -> Rejection | None:
        """Count one request against the budget and take an in-flight slot, or refuse it (429)."""
        now = self.clock.time()
        with self._lock:
            limits = self.limits
            state = self._keys.setdefault((client_id, mailbox.lower()), _KeyState(window_start=now))
            if now >= state.window_start + limits.window_seconds:
                state.window_start, state.count = now, 0
            state.count += 1  # throttled requests count too
            rejection: Rejection | None = None
            if limits.enabled and state.count > limits.budget:  # refused until the window ends
                wait = max(1, math.ceil(state.window_start + limits.window_seconds - now))
                rejection = Rejection("budget", wait)
            elif limits.enabled and now < state.blocked_until:
                rejection = Rejection("blocked", max(1, math.ceil(state.blocked_until - now)))
            elif limits.enabled and state.in_flight >= limits.concurrency:
                rejection = Rejection("concurrency", limits.concurrency_retry_after)
            else:
                state.in_flight += 1
                state.peak = max(state.peak, state.in_flight)
                in_flight = state.in_flight
        if rejection is not None:
            self.counters.incr(f"{self.prefix}.throttled")
            self.counters.incr(f"{self.prefix}.throttled.{rejection.reason}")
            return rejection
        self.counters.peak(f"{self.prefix}.inflight.{mailbox.lower()}", in_flight)
        self.counters.peak(f"{self.prefix}.inflight", in_flight)
        return None

    def block(self, client_id: str, mailbox: str, seconds: float) -> None:
        """Refuse the app's requests to the mailbox for `seconds` (the Retry-After of a 429 just answered)."""
        now = self.clock.time()
        with self._lock:
            state = self._keys.setdefault((client_id, mailbox.lower()), _KeyState(window_start=now))
            state.blocked_until = max(state.blocked_until, now + max(float(seconds), 0.0))

    def release(self, client_id: str, mailbox: str) -> None:
        with self._lock:
            state = self._keys.get((client_id, mailbox.lower()))
            if state is not None and state.in_flight > 0:
                state.in_flight -= 1

    @contextmanager
    def slot(self, client_id: str, mailbox: str, started: float | None = None) -> Iterator[Rejection | None]:
        """Hold a slot for the duration of the block (yields the refusal instead when there is none) and for the
        injected latency, so concurrent requests overlap the way they do against Exchange. The latency is the
        request's whole service time: the simulator's own work inside the block counts towards it, so a benchmark's
        bound of N x latency is not inflated by the simulator's CPU time. `started` (monotonic) is when the
        request arrived, so the time spent authenticating it before the slot counts too."""
        rejection = self.try_acquire(client_id, mailbox)
        if rejection is not None:
            yield rejection
            return
        answer_at = (time.monotonic() if started is None else started) + self._delay(mailbox)
        try:
            yield None
        finally:
            remaining = answer_at - time.monotonic()
            if remaining > 0:  # also before a dropped connection is noticed
                time.sleep(remaining)
            self.release(client_id, mailbox)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "limits": vars(self.limits).copy(),
                "latency": vars(self.latency).copy(),
                "mailbox_latency": {k: vars(v).copy() for k, v in self.mailbox_latency.items()},
                "keys": {
                    f"{client}|{mailbox}": {"in_flight": s.in_flight, "count": s.count, "peak": s.peak,
                                            "blocked_until": s.blocked_until}
                    for (client, mailbox), s in self._keys.items()
                },
            }
