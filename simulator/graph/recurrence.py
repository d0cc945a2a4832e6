"""Recurring series (`patternedRecurrence`) expanded into occurrences the way Outlook does.

Why it matters: availability must include every occurrence of a weekly meeting, and a sync that reads only series
masters misses them. Occurrences are computed in the series' time zone, so a 09:00 weekly meeting stays at 09:00
local across a DST change while its UTC instant moves by an hour.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from simulator.graph.errors import GraphError
from simulator.graph.timezones import known_zone

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
INDEXES = ("first", "second", "third", "fourth", "last")
PATTERNS = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")
RANGES = ("endDate", "noEnd", "numbered")


def _invalid(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", f"Invalid recurrence: {message}")


@dataclass(frozen=True)
class Recurrence:
    pattern: str
    interval: int
    days_of_week: tuple[int, ...]  # Monday = 0, sorted
    first_day_of_week: int
    day_of_month: int
    month: int
    index: str
    range_type: str
    start: date
    end: date | None
    count: int
    time_zone: str | None

    @classmethod
    def parse(cls, raw: object, fallback_zone: str) -> Recurrence:
        if not isinstance(raw, dict) or not isinstance(raw.get("pattern"), dict) or not isinstance(
            raw.get("range"), dict
        ):
            raise _invalid("'pattern' and 'range' are required")
        pattern, rng = raw["pattern"], raw["range"]
        kind = pattern.get("type")
        if kind not in PATTERNS:
            raise _invalid(f"unsupported pattern type {kind!r}")
        interval = pattern.get("interval", 1)
        if not isinstance(interval, int) or interval < 1 or interval > 99:
            raise _invalid("'interval' must be an integer from 1 to 99")
        names = pattern.get("daysOfWeek") or []
        if not isinstance(names, list) or any(str(n).lower() not in DAYS for n in names):
            raise _invalid("'daysOfWeek' must name days of the week")
        days = tuple(sorted({DAYS.index(str(n).lower()) for n in names}))
        if kind in ("weekly", "relativeMonthly", "relativeYearly") and not days:
            raise _invalid(f"a {kind} pattern needs 'daysOfWeek'")
        first_day = str(pattern.get("firstDayOfWeek") or "sunday").lower()
        if first_day not in DAYS:
            raise _invalid("'firstDayOfWeek' must be a day of the week")
        day_of_month = pattern.get("dayOfMonth") or 0
        month = pattern.get("month") or 0
        if kind in ("absoluteMonthly", "absoluteYearly") and not (isinstance(day_of_month, int) and
                                                                   1 <= day_of_month <= 31):
            raise _invalid("'dayOfMonth' must be 1 to 31")
        if kind in ("absoluteYearly", "relativeYearly") and not (isinstance(month, int) and 1 <= month <= 12):
            raise _invalid("'month' must be 1 to 12")
        index = str(pattern.get("index") or "first")
        if index not in INDEXES:
            raise _invalid("'index' must be first, second, third, fourth or last")
        range_type = rng.get("type")
        if range_type not in RANGES:
            raise _invalid(f"unsupported range type {range_type!r}")
        try:
            start = date.fromisoformat(str(rng.get("startDate")))
        except ValueError:
            raise _invalid("'range.startDate' must be a date") from None
        end: date | None = None
        count = 0
        if range_type == "endDate":
            try:
                end = date.fromisoformat(str(rng.get("endDate")))
            except ValueError:
                raise _invalid("'range.endDate' must be a date") from None
            if end < start:
                raise _invalid("'range.endDate' is before 'range.startDate'")
        elif range_type == "numbered":
            count = rng.get("numberOfOccurrences") or 0
            if not isinstance(count, int) or count < 1:
                raise _invalid("'numberOfOccurrences' must be a positive integer")
        tz = rng.get("recurrenceTimeZone") or None
        if tz is not None and not known_zone(tz):
            raise _invalid(f"unknown recurrenceTimeZone {tz!r}")
        return cls(kind, interval, days, DAYS.index(first_day), int(day_of_month), int(month), index, range_type,
                   start, end, int(count), tz or fallback_zone)

    def to_graph(self) -> dict[str, Any]:
        return {
            "pattern": {
                "type": self.pattern,
                "interval": self.interval,
                "month": self.month,
                "dayOfMonth": self.day_of_month,
                "daysOfWeek": [DAYS[d] for d in self.days_of_week],
                "firstDayOfWeek": DAYS[self.first_day_of_week],
                "index": self.index,
            },
            "range": {
                "type": self.range_type,
                "startDate": self.start.isoformat(),
                "endDate": self.end.isoformat() if self.end else "0001-01-01",
                "recurrenceTimeZone": self.time_zone,
                "numberOfOccurrences": self.count,
            },
        }

    def dates(self, not_before: date | None = None) -> Iterator[date]:
        """Occurrence dates (local to the series zone) in order, from the range start or, when the range is not
        numbered, from near `not_before` (skipping whole periods is safe only when nothing is being counted)."""
        produced = 0
        skip_to = not_before if self.range_type != "numbered" else None
        try:
            for day in self._candidates(skip_to):
                if day < self.start:
                    continue
                if self.end is not None and day > self.end:
                    return
                yield day
                produced += 1
                if self.range_type == "numbered" and produced >= self.count:
                    return
        except (OverflowError, ValueError):  # ran past year 9999: a no-end series simply stops there
            return

    def _candidates(self, skip_to: date | None) -> Iterator[date]:
        if self.pattern == "daily":
            k = max(0, (skip_to - self.start).days // self.interval - 1) if skip_to else 0
            while True:
                yield self.start + timedelta(days=k * self.interval)
                k += 1
        elif self.pattern == "weekly":
            week0 = self.start - timedelta(days=(self.start.weekday() - self.first_day_of_week) % 7)
            offsets = sorted((d - self.first_day_of_week) % 7 for d in self.days_of_week)
            w = max(0, (skip_to - week0).days // 7 // self.interval - 1) if skip_to else 0
            while True:
                base = week0 + timedelta(days=7 * w * self.interval)
                for off in offsets:
                    yield base + timedelta(days=off)
                w += 1
        elif self.pattern in ("absoluteMonthly", "relativeMonthly"):
            months0 = self.start.year * 12 + self.start.month - 1
            k = 0
            if skip_to:
                k = max(0, (skip_to.year * 12 + skip_to.month - 1 - months0) // self.interval - 1)
            while True:
                year, month0 = divmod(months0 + k * self.interval, 12)
                yield self._in_month(year, month0 + 1)
                k += 1
        else:  # yearly
            k = max(0, (skip_to.year - self.start.year) // self.interval - 1) if skip_to else 0
            while True:
                yield self._in_month(self.start.year + k * self.interval, self.month)
                k += 1

    def _in_month(self, year: int, month: int) -> date:
        last = calendar.monthrange(year, month)[1]
        if self.pattern in ("absoluteMonthly", "absoluteYearly"):
            return date(year, month, min(self.day_of_month, last))  # Outlook moves the 31st to a short month's end
        matches = [d for d in range(1, last + 1) if date(year, month, d).weekday() in self.days_of_week]
        if self.index == "last":
            return date(year, month, matches[-1])
        # "first Monday or Wednesday" picks the first matching day; the pattern is relative to the set.
        position = INDEXES.index(self.index)
        return date(year, month, matches[min(position, len(matches) - 1)])
