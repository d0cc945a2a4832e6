"""One repository per table, and the bundle of them a process builds once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from azure.data.tables import TableServiceClient

from shared.models import (
    Alert,
    Connection,
    Integration,
    LocationSettings,
    PendingFlow,
    RefreshDue,
    TokenCache,
    due_row_key,
)
from shared.storage.tables import TableRepository


class Integrations(TableRepository[Integration]):
    table = "integrations"
    row_type = Integration

    def find(self, system: str) -> Integration | None:
        return self.get(system, "integration")

    def all(self) -> Iterator[Integration]:
        return self.query()


class Locations(TableRepository[LocationSettings]):
    table = "locations"
    row_type = LocationSettings


class Connections(TableRepository[Connection]):
    table = "connections"
    row_type = Connection

    def find(self, system: str, kind: str, subject_id: str) -> Connection | None:
        return self.get(system, f"{kind}:{subject_id}")

    def of_system(self, system: str) -> Iterator[Connection]:
        return self.partition(system)


class TokenCaches(TableRepository[TokenCache]):
    table = "tokencaches"
    row_type = TokenCache


class PendingFlows(TableRepository[PendingFlow]):
    table = "pendingflows"
    row_type = PendingFlow

    def expired(self, now: datetime) -> Iterator[PendingFlow]:
        return self.query("expires_at lt @now", parameters={"now": now})


class RefreshSchedule(TableRepository[RefreshDue]):
    table = "refreshdue"
    row_type = RefreshDue

    def due(self, now: datetime, *, page_size: int = 200) -> Iterator[RefreshDue]:
        """Only the entries whose time has come: a range scan on the row key, not a table scan."""
        upper = due_row_key(now, "", "", "")
        return self.query("PartitionKey eq 'due' and RowKey lt @upper", parameters={"upper": upper},
                          page_size=page_size)


class Alerts(TableRepository[Alert]):
    table = "alerts"
    row_type = Alert


@dataclass
class Repositories:
    integrations: Integrations
    locations: Locations
    connections: Connections
    token_caches: TokenCaches
    flows: PendingFlows
    refresh_schedule: RefreshSchedule
    alerts: Alerts

    @classmethod
    def build(cls, service: TableServiceClient, prefix: str = "") -> Repositories:
        return cls(
            integrations=Integrations(service, prefix),
            locations=Locations(service, prefix),
            connections=Connections(service, prefix),
            token_caches=TokenCaches(service, prefix),
            flows=PendingFlows(service, prefix),
            refresh_schedule=RefreshSchedule(service, prefix),
            alerts=Alerts(service, prefix),
        )

    def ensure_tables(self) -> None:
        for repo in vars(self).values():
            repo.ensure_table()
