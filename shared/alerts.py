"""Alerts for the host app's admin dashboard: raised where something needs a person, resolved when it is fixed.

One row per (type, subject) per system, so a problem seen by every sweep is one alert that counts its
occurrences, not a flood; resolving keeps the row for a while so the dashboard can show what was fixed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from shared.clock import Clock, utcnow
from shared.errors import AlreadyExists, ConcurrencyConflict
from shared.models import Alert
from shared.storage.repositories import Alerts

log = logging.getLogger(__name__)

REAUTHORIZATION_REQUIRED = "reauthorization_required"
CREDENTIALS_INVALID = "credentials_invalid"
SECRET_EXPIRING = "client_secret_expiring"  # noqa: S105  # nosec B105 - an alert type name
SECRET_EXPIRED = "client_secret_expired"  # noqa: S105  # nosec B105 - an alert type name
REPEATED_FAILURES = "repeated_failures"
APP_ACCESS_DENIED = "app_access_denied"  # Graph refuses an app-mode room: an Exchange admin must act
WEBHOOK_FAILING = "webhook_failing"


class AlertService:
    def __init__(self, alerts: Alerts, *, retention_days: int = 14, clock: Clock = utcnow) -> None:
        self._alerts = alerts
        self._retention = timedelta(days=retention_days)
        self._clock = clock

    def raise_alert(
        self, system: str, alert_type: str, subject: str, message: str, microsoft_code: str | None = None
    ) -> Alert:
        for _ in range(5):
            now = self._clock()
            current = self._alerts.get(system, f"{alert_type}|{subject}")
            if current is None:
                alert = Alert(system=system, alert_type=alert_type, subject=subject, message=message,
                              microsoft_code=microsoft_code, raised_at=now, last_seen_at=now)
                try:
                    created = self._alerts.insert(alert)
                except AlreadyExists:
                    continue
                log.warning("alert raised: system=%s type=%s subject=%s code=%s", system, alert_type, subject,
                            microsoft_code)
                return created
            if current.open:
                current.occurrences += 1
            else:  # the problem is back: a new episode
                current.raised_at, current.resolved_at, current.occurrences = now, None, 1
            current.message, current.microsoft_code, current.last_seen_at = message, microsoft_code, now
            try:
                return self._alerts.update(current)
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict("alert kept changing while being raised")

    def resolve(self, system: str, alert_type: str, subject: str) -> bool:
        for _ in range(5):
            current = self._alerts.get(system, f"{alert_type}|{subject}")
            if current is None or not current.open:
                return False
            current.resolved_at = self._clock()
            try:
                self._alerts.update(current)
            except ConcurrencyConflict:
                continue
            return True
        return False

    def list(self, system: str) -> list[dict[str, Any]]:
        """Open alerts, and those resolved within the retention period; newest first."""
        cutoff = self._clock() - self._retention
        rows = [a for a in self._alerts.partition(system) if a.open or (a.resolved_at and a.resolved_at >= cutoff)]
        rows.sort(key=lambda a: (not a.open, -a.last_seen_at.timestamp()))
        return [to_json(a) for a in rows]


def to_json(alert: Alert) -> dict[str, Any]:
    return {
        "type": alert.alert_type,
        "subject": alert.subject,
        "message": alert.message,
        "microsoft_code": alert.microsoft_code,
        "status": "open" if alert.open else "resolved",
        "raised_at": alert.raised_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "occurrences": alert.occurrences,
    }
