"""Timer triggers: six-field NCRONTAB schedules in UTC, one thread per timer so a slow run delays only itself.

NCRONTAB puts seconds first and requires both day-of-month and day-of-week to match when both are restricted
(classic cron ORs them), hence `second_at_beginning=True, day_or=False`. Occurrences missed while a run was still
going are skipped, not queued, as the Functions timer does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from devstack.host.catalog import FunctionSpec
from devstack.host.invoke import FunctionFailed

# A run that starts later than this after its occurrence reports past_due, like the host after a pause.
PAST_DUE_AFTER = timedelta(seconds=1)

Clock = Callable[[], datetime]
Fire = Callable[[FunctionSpec, TimerRequest], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class NcrontabSchedule:
    def __init__(self, expression: str) -> None:
        fields = expression.split()
        if len(fields) != 6 or not croniter.is_valid(expression, second_at_beginning=True):
            raise ValueError(f"'{expression}' is not a six-field NCRONTAB expression "
                             "({second} {minute} {hour} {day} {month} {day-of-week})")
        self.expression = " ".join(fields)

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (UTC)."""
        moment = moment.astimezone(UTC)
        itr = croniter(self.expression, moment, second_at_beginning=True, day_or=False)
        return itr.get_next(datetime)


class TimerRunner:
    def __init__(self, spec: FunctionSpec, schedule: NcrontabSchedule, fire: Fire, stop: threading.Event,
                 clock: Clock = utcnow) -> None:
        self.spec = spec
        self.schedule = schedule
        self._fire = fire
        self._stop = stop
        self._clock = clock
        self._thread = threading.Thread(target=self._loop, name=f"devstack-timer-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        last: datetime | None = None
        if self.spec.trigger.run_on_startup:
            now = self._clock()
            self._run(now, last, past_due=False)
            last = now
        scheduled = self.schedule.next_after(self._clock())
        while not self._stop.is_set():
            delay = (scheduled - self._clock()).total_seconds()
            if delay > 0:
                if self._stop.wait(delay):
                    return
                continue  # re-check: Event.wait may return a little early against the wall clock
            started = self._clock()
            self._run(started, last, past_due=started - scheduled > PAST_DUE_AFTER)
            last = scheduled
            scheduled = self.schedule.next_after(max(self._clock(), scheduled))

    def _run(self, started: datetime, last: datetime | None, *, past_due: bool) -> None:
        status = {
            "Last": (last or started).isoformat(),
            "Next": self.schedule.next_after(started).isoformat(),
            "LastUpdated": started.isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        try:
            self._fire(self.spec, request)
        except FunctionFailed:  # already logged; the schedule goes on
            return
