"""A controllable clock: wall time plus an offset that tests and the control API can advance."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Simulated time; everything time-dependent in the simulator (token lifetimes, code expiry,
    the 90-day refresh-token inactivity rule, throttling windows) reads it, so advancing it is enough."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset
