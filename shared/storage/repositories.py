"""One repository per table, and the bundle of them a process builds once."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableServiceClient, UpdateMode

from shared.errors import AlreadyExists, ConcurrencyConflict
from shared.models import (
    Alert,
    Connection,
    ExportChunk,
    ExportJob,
    ExternalEvent,
    FeedEntry,
    FeedPage,
    Integration,
    Item,
    LocationSettings,
    OwnObservation,
    PendingFlow,
    PullState,
    PullTarget,
    PushSubscription,
    RefreshDue,
    RetryEntry,
    SubscriptionLookup,
    SweepMark,
    SyncRecord,
    SystemRecord,
    TokenCache,
    due_row_key,
)
from shared.storage.tables import MAX_FILTER_COMPARISONS, MAX_TRANSACTION, TableRepository


class SystemRecords(TableRepository[SystemRecord]):
    table = "systemkeys"
    row_type = SystemRecord

    def find(self, system: str) -> SystemRecord | None:
        return self.get(system, "system")


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

    def listing(self, system: str, *, kind: str | None, after: str, limit: int) -> list[Connection]:
        """At most `limit` connections of a system in row-key order (`kind:id`) after the row key `after`; one
        kind's is a row-key range (`user:` up to `user;`), not a filter over the whole partition."""
        lower, upper = (f"{kind}:", f"{kind};") if kind else ("", "~")  # ':' + 1 == ';'; row keys are below '~'
        rows = self.query("PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi",
                          parameters={"pk": system, "lo": max(after, lower), "hi": upper}, page_size=limit)
        return list(itertools.islice(rows, limit))


class TokenCaches(TableRepository[TokenCache]):
    table = "tokencaches"
    row_type = TokenCache


class PendingFlows(TableRepository[PendingFlow]):
    table = "pendingflows"
    row_type = PendingFlow

    def expired(self, now: datetime, *, page_size: int = 200) -> Iterator[PendingFlow]:
        """Flows whose expiry has passed, by a filter on the expiry property (pages read as the caller goes)."""
        return self.query("expires_at lt @now", parameters={"now": now}, page_size=page_size)


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


class Items(TableRepository[Item]):
    table = "items"
    row_type = Item

    def of_ids(self, partition: str, item_ids: list[str]) -> list[Item]:
        """Several items of a connection: one range query over the span of their IDs (a job's chunks hold
        neighbouring IDs), or point reads when they are few."""
        if len(item_ids) <= 8:
            return [i for i in (self.get(partition, item_id) for item_id in item_ids) if i is not None]
        wanted = set(item_ids)
        rows = self.query("PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi",
                          parameters={"pk": partition, "lo": min(item_ids), "hi": max(item_ids)}, page_size=1000)
        return [i for i in rows if i.item_id in wanted]


class SyncRecords(TableRepository[SyncRecord]):
    table = "syncrecords"
    row_type = SyncRecord

    def of_item(self, partition: str, item_id: str) -> list[SyncRecord]:
        """An item's records: a row-key range scan within the connection's partition."""
        return list(self.query("PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                               parameters={"pk": partition, "lo": f"{item_id}|", "hi": f"{item_id}}}"}))


    def of_items(self, partition: str, item_ids: list[str]) -> list[SyncRecord]:
        """Records of several items: one range query over the span of their IDs (chunks hold neighbouring IDs),
        or one query per item when they are few."""
        if len(item_ids) <= 8:
            return [r for item_id in item_ids for r in self.of_item(partition, item_id)]
        wanted = set(item_ids)
        lo, hi = min(item_ids), max(item_ids)
        rows = self.query("PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                          parameters={"pk": partition, "lo": f"{lo}|", "hi": f"{hi}}}"}, page_size=1000)
        return [r for r in rows if r.item_id in wanted]


    def claim_many(self, records: list[SyncRecord]) -> list[SyncRecord]:
        """Write records only where nobody changed them since they were read (a row read has its ETag; one never
        read must not exist yet): one transaction per 100 of a partition, one by one when a transaction is
        refused. Answers the records that could not be written (another writer got there first); the others
        have their new ETags."""
        lost: list[SyncRecord] = []
        by_partition: dict[str, list[SyncRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition_key(), []).append(record)
        for rows in by_partition.values():
            for start in range(0, len(rows), MAX_TRANSACTION):
                chunk = rows[start:start + MAX_TRANSACTION]
                try:
                    answers = self.transaction([self._claim_op(r) for r in chunk])
                except ConcurrencyConflict:
                    lost.extend(r for r in chunk if not self._claim_one(r))
                    continue
                for row, answer in zip(chunk, answers, strict=True):
                    row.etag = answer.get("etag", row.etag)
        return lost

    def _claim_op(self, record: SyncRecord) -> tuple[str, dict[str, Any], dict[str, Any]]:
        entity = self.encode(record)
        if record.etag is None:
            return ("create", entity, {})
        return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": record.etag,
                                   "match_condition": MatchConditions.IfNotModified})

    def _claim_one(self, record: SyncRecord) -> bool:
        try:
            if record.etag is None:
                self.insert(record)
            else:
                self.update(record)
        except (AlreadyExists, ConcurrencyConflict):
            return False
        return True

    def of_events(self, partition: str, event_ids: list[str], transaction_ids: list[str]) -> list[SyncRecord]:
        """The records of these Outlook events, or of creates in flight with these transactionIds."""
        return self.of_delta(partition, event_ids, transaction_ids, [])

    def of_delta(self, partition: str, event_ids: list[str], transaction_ids: list[str],
                 spans: list[tuple[datetime, datetime]]) -> list[SyncRecord]:
        """What a pull of a few changed events needs, in as few filtered queries as Table Storage allows (15
        comparisons each, one of them the partition): the records of these Outlook events, of creates in flight
        with these transactionIds, and the host bookings overlapping these spans (conflict flags)."""
        terms: list[tuple[int, str, list[Any]]] = [(1, "event_id eq @{0}", [e]) for e in event_ids]
        terms += [(1, "transaction_id eq @{0}", [t]) for t in transaction_ids]
        terms += [(2, "( start_utc lt @{0} and end_utc gt @{1} )", [end, start]) for start, end in spans]
        rows: dict[str, SyncRecord] = {}
        budget = MAX_FILTER_COMPARISONS - 1
        group: list[tuple[int, str, list[Any]]] = []
        for term in [*terms, (budget + 1, "", [])]:  # a sentinel flushes the last group
            if group and sum(t[0] for t in group) + term[0] > budget:
                parameters: dict[str, Any] = {"pk": partition}
                clauses = []
                for _, template, values in group:
                    names = [f"v{len(parameters) + i}" for i in range(len(values))]
                    parameters.update(zip(names, values, strict=True))
                    clauses.append(template.format(*names))
                # Spaces inside the parentheses: the SDK finds `@name` placeholders by splitting on spaces.
                for row in self.query(f"PartitionKey eq @pk and ( {' or '.join(clauses)} )", parameters=parameters,
                                      page_size=1000):
                    rows[row.row_key()] = row
                group = []
            if term[1]:
                group.append(term)
        return list(rows.values())

    def overlapping(self, partition: str, start: datetime, end: datetime) -> list[SyncRecord]:
        """The connection's host bookings that overlap [start, end) (filtered by the service, not read whole)."""
        return list(self.query("PartitionKey eq @pk and start_utc lt @end and end_utc gt @start",
                               parameters={"pk": partition, "start": start, "end": end}, page_size=1000))


class Retries(TableRepository[RetryEntry]):
    table = "exportretries"
    row_type = RetryEntry

    def due(self, now: datetime) -> Iterator[RetryEntry]:
        return self.query("PartitionKey eq 'retry' and next_attempt_at le @now", parameters={"now": now})


class ExportJobs(TableRepository[ExportJob]):
    table = "exportjobs"
    row_type = ExportJob


class ExportChunks(TableRepository[ExportChunk]):
    table = "exportchunks"
    row_type = ExportChunk


class PullTargets(TableRepository[PullTarget]):
    table = "pulltargets"
    row_type = PullTarget


# One table for rooms' two-way sync: state, external events, own-event observations and the feed share each
# room's partition, so a pull commits them together (see shared/pull.py).
ROOM_SYNC_TABLE = "roomsync"


class PullStates(TableRepository[PullState]):
    table = ROOM_SYNC_TABLE
    row_type = PullState


class ExternalEvents(TableRepository[ExternalEvent]):
    table = ROOM_SYNC_TABLE
    row_type = ExternalEvent

    def of_room(self, partition: str) -> Iterator[ExternalEvent]:
        return self.prefixed(partition, "ext|")


class OwnObservations(TableRepository[OwnObservation]):
    table = ROOM_SYNC_TABLE
    row_type = OwnObservation

    def of_room(self, partition: str) -> Iterator[OwnObservation]:
        return self.prefixed(partition, "own|")


class Feed(TableRepository[FeedPage]):
    table = ROOM_SYNC_TABLE
    row_type = FeedPage
    # JSON characters a page holds: a string property holds 64 KiB of UTF-16 (32K units); the JSON is ASCII.
    PAGE_CHARS = 30_000

    @classmethod
    def pack(cls, entries: list[FeedEntry]) -> list[FeedPage]:
        """Consecutive entries of one room in as few pages as fit."""
        pages: list[FeedPage] = []
        size = 0
        for entry in entries:
            packed = [entry.seq, entry.change, entry.event_id, entry.data]
            length = len(json.dumps(packed, separators=(",", ":"))) + 1
            if not pages or size + length > cls.PAGE_CHARS:
                pages.append(FeedPage(system=entry.system, subject_id=entry.subject_id, first_seq=entry.seq,
                                      last_seq=entry.seq, published_at=entry.published_at))
                size = 2
            page = pages[-1]
            page.entries.append(packed)
            page.last_seq = entry.seq
            size += length
        return pages

    def after(self, partition: str, cursor: int, limit: int) -> list[FeedEntry]:
        """Up to `limit` entries after `cursor`, in order: the pages whose last entry is after it, read lazily."""
        entries: list[FeedEntry] = []
        pages = self.query("PartitionKey eq @pk and RowKey gt @after and RowKey lt @end",
                           parameters={"pk": partition, "after": f"feed|{cursor:012d}", "end": "feed}"},
                           page_size=20)
        for page in pages:
            entries.extend(e for e in page.unpack() if e.seq > cursor)
            if len(entries) >= limit:
                break
        return entries[:limit]


class PushSubscriptions(TableRepository[PushSubscription]):
    table = "pushsubscriptions"
    row_type = PushSubscription

    def find(self, system: str, kind: str, subject_id: str) -> PushSubscription | None:
        return self.get(system, f"{kind}:{subject_id}")


# The hot paths of change notifications: a lookup row per Graph subscription ID (what an anonymous notification is
# checked against) and the pull timer's sweep mark.
PUSH_STATE_TABLE = "pushstate"


class SubscriptionLookups(TableRepository[SubscriptionLookup]):
    table = PUSH_STATE_TABLE
    row_type = SubscriptionLookup

    def find(self, subscription_id: str) -> SubscriptionLookup | None:
        return self.get(subscription_id, "lookup")


class SweepMarks(TableRepository[SweepMark]):
    table = PUSH_STATE_TABLE
    row_type = SweepMark


@dataclass
class Repositories:
    integrations: Integrations
    locations: Locations
    connections: Connections
    token_caches: TokenCaches
    flows: PendingFlows
    refresh_schedule: RefreshSchedule
    alerts: Alerts
    items: Items
    sync_records: SyncRecords
    retries: Retries
    export_jobs: ExportJobs
    export_chunks: ExportChunks
    pull_targets: PullTargets
    pull_states: PullStates
    external_events: ExternalEvents
    own_observations: OwnObservations
    feed: Feed
    systems: SystemRecords
    push_subscriptions: PushSubscriptions
    subscription_lookups: SubscriptionLookups
    sweep_marks: SweepMarks

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
            items=Items(service, prefix),
            sync_records=SyncRecords(service, prefix),
            retries=Retries(service, prefix),
            export_jobs=ExportJobs(service, prefix),
            export_chunks=ExportChunks(service, prefix),
            pull_targets=PullTargets(service, prefix),
            pull_states=PullStates(service, prefix),
            external_events=ExternalEvents(service, prefix),
            own_observations=OwnObservations(service, prefix),
            feed=Feed(service, prefix),
            systems=SystemRecords(service, prefix),
            push_subscriptions=PushSubscriptions(service, prefix),
            subscription_lookups=SubscriptionLookups(service, prefix),
            sweep_marks=SweepMarks(service, prefix),
        )

    def ensure_tables(self) -> None:
        for name in sorted({repo.name for repo in vars(self).values()}):
            next(r for r in vars(self).values() if r.name == name).ensure_table()
