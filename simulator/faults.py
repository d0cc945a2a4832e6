"""Fault injection for reliability tests: the failures Graph clients must survive, on demand and repeatably.

Kinds:
- "429": throttled (with `Retry-After`), as if another app or a previous burst had used the mailbox up;
- "503" / "504": service unavailable / gateway timeout, what Graph answers when a backend is unhealthy;
- "reset": the connection drops before any work is done;
- "timeout_after_commit": the work is done (an event is created) and then the connection drops, so the client
  never sees the answer. This is the case that makes naive retries create duplicates.
- "duplicate_transaction": a create is accepted as a new event even though an event with its `transactionId`
  exists. Graph documents `transactionId` as a way "to avoid redundant POST operations in case of client retries"
  (https://learn.microsoft.com/graph/api/resources/event), not as a guarantee; a peer saw two concurrent creates
  with one transactionId both accepted on real Graph (reported in this project's issue 13). Under this fault only
  the app's own claim on the occurrence stops a duplicate.

A rule fires by probability (with a seedable RNG, so a failing run can be replayed), for the next N matching
requests, or both (matching requests fire with that probability until the rule has fired N times). Rules filter
by HTTP method and a substring of the target path (e.g. "/events").
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import asdict, dataclass

KINDS = ("429", "503", "504", "reset", "timeout_after_commit", "duplicate_transaction")
_ALIASES = {
    "throttle": "429", "throttled": "429", "too_many_requests": "429",
    "unavailable": "503", "service_unavailable": "503",
    "gateway_timeout": "504", "timeout": "504",
    "connection_reset": "reset", "drop": "reset",
    "timeout_after_commit": "timeout_after_commit", "commit_then_drop": "timeout_after_commit",
    "transaction_race": "duplicate_transaction",
}


@dataclass
class FaultRule:
    id: int
    kind: str
    probability: float | None = None
    remaining: int | None = None  # None: unlimited
    method: str | None = None
    path_contains: str | None = None
    retry_after: int | None = None
    fired: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not (self.path_contains and self.path_contains.lower() not in target.lower())

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None

    @property
    def drops_connection(self) -> bool:
        return self.kind in ("reset", "timeout_after_commit")


class FaultInjector:
    """Thread-safe; the first rule (in the order added) that fires for a request decides its fault."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)  # nosec B311 - simulated faults and jitter, not security

    def add(
        self,
        kind: str,
        *,
        probability: float | None = None,
        count: int | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: int | None = None,
    ) -> FaultRule:
        normalized = _ALIASES.get(str(kind).lower(), str(kind))
        if normalized not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {KINDS}")
        if probability is not None and not 0.0 <= float(probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if count is not None and int(count) < 1:
            raise ValueError("count must be at least 1")
        rule = FaultRule(
            next(self._ids), normalized,
            None if probability is None else float(probability),
            None if count is None else int(count),
            method, path_contains,
            None if retry_after is None else int(retry_after),
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def seed(self, seed: int) -> None:
        with self._lock:
            self._rng.seed(seed)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, object]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def pick(self, method: str, target: str) -> FaultRule | None:
        """The fault for this request, if any; consumes one use of a counted rule only when it fires."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, target):
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule
        return None
