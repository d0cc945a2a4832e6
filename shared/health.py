"""Liveness and dependency checks: is Table Storage reachable, does Key Vault answer and accept our identity.

Checks run in parallel with no SDK retries, so a dead dependency shows in about a second rather than after the
SDK's backoff, and each failure names the dependency (never an exception message, which may carry URLs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Check = Callable[[], None]


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    checks: dict[str, dict[str, Any]]

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "healthy" if self.healthy else "unhealthy", "checks": self.checks}
        if not self.healthy:
            down = ", ".join(name for name, c in self.checks.items() if not c["ok"])
            body["error"] = {"code": "dependency_unavailable", "message": f"unavailable: {down}"}
        return body


class HealthService:
    def __init__(self, checks: dict[str, Check]) -> None:
        self._checks = checks

    def run(self) -> HealthReport:
        with ThreadPoolExecutor(max_workers=len(self._checks) or 1) as pool:
            futures = {name: pool.submit(_timed, check) for name, check in self._checks.items()}
            results = {name: future.result() for name, future in futures.items()}
        return HealthReport(all(r["ok"] for r in results.values()), results)


def _timed(check: Check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
        ok, problem = True, None
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        ok, problem = False, getattr(exc, "code", None) or "unreachable"
    result: dict[str, Any] = {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if problem:
        result["problem"] = problem
    return result


def storage_check(service: Any) -> Check:
    def check() -> None:
        # One page of one table name: proves the endpoint answers and our credential is accepted.
        next(iter(service.list_tables(results_per_page=1, retry_total=0)), None)

    return check
