"""Thread-safe counters and peak gauges the benchmarks and reliability tests assert on."""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._peaks: dict[str, int] = {}
        self._lists: dict[str, list[int]] = {}

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def peak(self, name: str, value: int) -> None:
        """Record `value` if it is the highest seen for `name`."""
        with self._lock:
            if value > self._peaks.get(name, 0):
                self._peaks[name] = value

    def sample(self, name: str, value: int) -> None:
        """Append a value to a named series (e.g. batch sizes)."""
        with self._lock:
            self._lists.setdefault(name, []).append(value)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "counts": dict(self._counts),
                "peaks": dict(self._peaks),
                "series": {k: list(v) for k, v in self._lists.items()},
            }

    def reset(self, prefix: str | None = None) -> None:
        """Zero everything, or only the names that start with `prefix` (one side's counters)."""
        with self._lock:
            for store in (self._counts, self._peaks, self._lists):
                for name in [n for n in store if prefix is None or n.startswith(prefix)]:
                    del store[name]
