"""Table Storage repositories: dataclasses in and out, ETag concurrency, chunked transactions, lazy paging.

Each table gets a small repository class naming its row type and table; this module holds what they share. SDK
exceptions never leave it: a lost race is `ConcurrencyConflict`, a duplicate is `AlreadyExists`, an outage is
`DependencyUnavailable`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import logging
import re
import types
import typing
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableServiceClient,
    UpdateMode,
)

from shared.errors import AlreadyExists, ConcurrencyConflict, DependencyUnavailable, NotFound, PayloadTooLarge
from shared.storage import reads, transactions
from shared.storage.transactions import TransactionRefused

log = logging.getLogger(__name__)

MAX_TRANSACTION = 100  # Table Storage's limit per transaction (one partition)
TRANSACTIONS_AT_ONCE = 8  # a bulk write's transactions in flight together, per process
# Table Storage's size limits ("Scalability and performance targets for Table storage", "Understanding the Table
# service data model"): an entity holds at most 1 MiB, a string property 64 KiB (32K UTF-16 units), and a
# transaction's payload must stay under 4 MiB.
MAX_ENTITY_BYTES = 1024 * 1024 - 8 * 1024  # less a margin for the system properties and per-property overhead
MAX_STRING_UNITS = 32 * 1024
JSON_PART_CHARS = 30_000  # a JSON field longer than this is stored in parts (the JSON is ASCII: a char a unit)
MAX_TRANSACTION_BYTES = 3 * 1024 * 1024  # of entity JSON, leaving room for the multipart framing
MAX_FILTER_COMPARISONS = 15  # Table Storage's limit per $filter
_FORBIDDEN_KEY_CHARS = set('/\\#?') | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}
_FORBIDDEN_KEY_RE = re.compile("[" + re.escape("".join(sorted(_FORBIDDEN_KEY_CHARS))) + "]")
_RESERVED = {"PartitionKey", "RowKey", "Timestamp", "etag"}


def check_key(value: str, what: str = "key") -> str:
    """PartitionKey and RowKey may not hold / \\ # ? or control characters, and are at most 1 KiB."""
    if not value or len(value.encode()) > 1024 or _FORBIDDEN_KEY_RE.search(value):
        raise ValueError(f"{what} {value!r} is not a valid table key")
    return value


@dataclasses.dataclass(kw_only=True)
class Row:
    """Base of every table row. Subclasses are dataclasses and say how their keys are made.

    Every field is stored as a property (key fields too, so decoding needs nothing but properties). Supported
    field types: str, int, float, bool, datetime (UTC), bytes, None-able versions of those, and JSON-able
    dict/list (stored as a JSON string; one longer than a string property holds is stored in parts `name`,
    `name__1`, ... with their count in `name__parts`, so a row holds up to the entity's 1 MiB). `etag` is filled
    on read and used for conditional writes.
    """

    etag: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def partition_key(self) -> str:
        raise NotImplementedError

    def row_key(self) -> str:
        raise NotImplementedError


R = TypeVar("R", bound=Row)
T = TypeVar("T")


class RowCodec(Generic[R]):
    """Converts between a Row dataclass and a table entity."""

    def __init__(self, row_type: type[R]) -> None:
        self.row_type = row_type
        hints = typing.get_type_hints(row_type)
        self.fields = {f.name: hints[f.name] for f in dataclasses.fields(row_type) if f.name != "etag"}
        clash = _RESERVED & set(self.fields)
        if clash:
            raise TypeError(f"{row_type.__name__} uses reserved property names {clash}")
        # Each field's base type, worked out once: rows are encoded by the thousand in an export.
        self._bases = [(name, _base_type(hint)) for name, hint in self.fields.items()]

    def to_entity(self, row: R) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": check_key(row.partition_key(), "PartitionKey"),
            "RowKey": check_key(row.row_key(), "RowKey"),
        }
        for name, base in self._bases:
            value = getattr(row, name)
            if value is None:
                continue  # absent property reads back as None
            if base is dict or base is list:
                entity.update(_json_parts(name, json.dumps(value, separators=(",", ":"))))
            elif base is int and not isinstance(value, bool):
                entity[name] = EntityProperty(value, EdmType.INT64)
            elif base is datetime:
                if value.tzinfo is None:
                    raise ValueError(f"{name}: naive datetime; use UTC-aware datetimes")
                entity[name] = value.astimezone(UTC)
            else:
                entity[name] = value
        _check_size(self.row_type.__name__, entity)
        return entity

    def from_entity(self, entity: Any) -> R:
        values: dict[str, Any] = {}
        for name, base in self._bases:
            raw = entity.get(name)
            if raw is None:
                continue
            if hasattr(raw, "value") and hasattr(raw, "edm_type"):
                raw = raw.value
            if base is dict or base is list:
                parts = entity.get(f"{name}__parts")
                if parts is not None:
                    count = int(getattr(parts, "value", parts))
                    raw = raw + "".join(entity[f"{name}__{i}"] for i in range(1, count))
                raw = json.loads(raw)
            elif base is int:
                raw = int(raw)
            elif base is datetime and isinstance(raw, datetime):
                raw = raw.astimezone(UTC)
            values[name] = raw
        row = self.row_type(**values)
        row.etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        return row


def _json_parts(name: str, text: str) -> dict[str, Any]:
    if len(text) <= JSON_PART_CHARS:
        return {name: text}
    parts = [text[i:i + JSON_PART_CHARS] for i in range(0, len(text), JSON_PART_CHARS)]
    return {name: parts[0], **{f"{name}__{i}": part for i, part in enumerate(parts[1:], 1)},
            f"{name}__parts": len(parts)}


def _check_size(row_type: str, entity: dict[str, Any]) -> None:
    """Refuse, before sending, a row Table Storage would refuse for its size: a clear 413 rather than the
    service's 400 turned into a 503 that a retry cannot cure."""
    # Most rows are far from both limits: a bound that holds whatever the text (a character is at most two UTF-16
    # units) settles them without counting units.
    bound, longest = 0, 0
    for name, value in entity.items():
        if type(value) is str:
            longest = max(longest, len(value))
            bound += 12 + 2 * len(name) + 4 * len(value)
        elif type(value) is bytes:
            bound += MAX_ENTITY_BYTES  # counted exactly below
        else:  # numbers, booleans, dates
            bound += 16 + 2 * len(name)
    if longest * 2 <= MAX_STRING_UNITS and bound <= MAX_ENTITY_BYTES:
        return
    total = 0
    for name, value in entity.items():
        raw = getattr(value, "value", value)
        size = 8
        if isinstance(raw, str):
            units = len(raw) if raw.isascii() else len(raw) + sum(1 for ch in raw if ord(ch) > 0xFFFF)
            if units > MAX_STRING_UNITS:
                raise PayloadTooLarge(f"{row_type}.{name} is too large to store ({units} UTF-16 units; at most "
                                      f"{MAX_STRING_UNITS})")
            size = 4 + 2 * units
        elif isinstance(raw, bytes):
            size = 4 + len(raw)
        total += 8 + 2 * len(name) + size
    if total > MAX_ENTITY_BYTES:
        raise PayloadTooLarge(f"a {row_type} row would be {total // 1024} KiB; Table Storage stores at most 1 MiB")


def _wire_size(entity: dict[str, Any]) -> int:
    """About how many bytes the entity's JSON takes in a transaction (non-ASCII text travels as \\u escapes)."""
    size = 0
    for name, value in entity.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, str):  # plain printable ASCII travels as itself; anything else as json.dumps writes it
            plain = raw.isascii() and raw.isprintable() and '"' not in raw and "\\" not in raw
            size += len(name) * 2 + 40 + (len(raw) + 2 if plain else len(json.dumps(raw)))
        else:
            size += len(name) * 2 + 72
    return size


def _base_type(hint: Any) -> Any:
    """`str | None` -> str; `dict[str, int]` -> dict."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else str
    return typing.get_origin(hint) or hint


class TableRepository(Generic[R]):
    """One table. Subclasses set `table` and `row_type`."""

    table: ClassVar[str]
    row_type: ClassVar[type[Row]]

    def __init__(self, service: TableServiceClient, prefix: str = "") -> None:
        self.name = f"{prefix}{self.table}"
        self._client: TableClient = service.get_table_client(self.name)
        self._codec: RowCodec[R] = RowCodec(self.row_type)  # type: ignore[arg-type]

    def ensure_table(self) -> None:
        try:
            self._client.create_table()
        except ResourceExistsError:
            return
        except AzureError as exc:
            raise _unavailable(exc) from None

    def get(self, partition_key: str, row_key: str) -> R | None:
        check_key(partition_key)
        check_key(row_key)
        try:
            entity = reads.get(self._client, partition_key, row_key)
        except AzureError as exc:
            raise _unavailable(exc) from None
        return None if entity is None else self._codec.from_entity(entity)

    def require(self, partition_key: str, row_key: str, what: str = "item") -> R:
        row = self.get(partition_key, row_key)
        if row is None:
            raise NotFound(f"{what} not found")
        return row

    def insert(self, row: R) -> R:
        """Create; `AlreadyExists` if a row with the same keys exists."""
        entity = self._codec.to_entity(row)
        try:
            meta = self._client.create_entity(entity)
        except ResourceExistsError:
            raise AlreadyExists(f"{self.table} row already exists") from None
        except AzureError as exc:
            raise _unavailable(exc) from None
        return _with_etag(row, meta)

    def update(self, row: R) -> R:
        """Replace the row if nobody changed it since it was read (its ETag); else `ConcurrencyConflict`."""
        if row.etag is None:
            raise ValueError("update needs a row that was read (it has no etag)")
        entity = self._codec.to_entity(row)
        try:
            meta = self._client.update_entity(
                entity, mode=UpdateMode.REPLACE,
                etag=row.etag, match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyConflict(f"{self.table} row changed or vanished since it was read") from None
        except AzureError as exc:
            raise _unavailable(exc) from None
        return _with_etag(row, meta)

    def replace(self, row: R) -> bool:
        """Replace the row where it exists, whatever its ETag (a single writer's row that may have been
        withdrawn); False when it is gone."""
        entity = self._codec.to_entity(row)
        try:
            meta = self._client.update_entity(entity, mode=UpdateMode.REPLACE)
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise _unavailable(exc) from None
        _with_etag(row, meta)
        return True

    def upsert(self, row: R) -> R:
        """Write unconditionally (last writer wins): only for rows with a single writer."""
        entity = self._codec.to_entity(row)
        try:
            meta = self._client.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise _unavailable(exc) from None
        return _with_etag(row, meta)

    def delete(self, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        """Delete; a missing row counts as deleted. With `etag`, only if unchanged (else `ConcurrencyConflict`)."""
        kwargs: dict[str, Any] = {}
        if etag is not None:
            kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        check_key(partition_key)
        check_key(row_key)
        try:
            self._client.delete_entity(partition_key, row_key, **kwargs)
        except ResourceModifiedError:
            raise ConcurrencyConflict(f"{self.table} row changed since it was read") from None
        except AzureError as exc:
            raise _unavailable(exc) from None

    def query(
        self, filter: str | None = None, *, parameters: dict[str, Any] | None = None, page_size: int = 200
    ) -> Iterator[R]:
        """Rows matching an OData filter, fetched a page at a time as the caller iterates (never the whole table).

        Always pass values through `parameters` (`@name` placeholders), never by formatting them into `filter`.
        """
        try:
            if filter:
                pages: Iterable[Any] = reads.query(self._client, filter, parameters, page_size)
            else:
                pages = self._client.list_entities(results_per_page=page_size)
            for entity in pages:
                yield self._codec.from_entity(entity)
        except AzureError as exc:
            raise _unavailable(exc) from None

    def partition(self, partition_key: str, *, page_size: int = 200) -> Iterator[R]:
        return self.query("PartitionKey eq @pk", parameters={"pk": partition_key}, page_size=page_size)

    def page(
        self, filter: str, *, parameters: dict[str, Any] | None = None, page_size: int = 100,
        continuation: Any = None,
    ) -> tuple[list[R], Any]:
        """One page and the token for the next (None at the end): for APIs that page by cursor."""
        try:
            pages = self._client.query_entities(filter, parameters=parameters, results_per_page=page_size)
            iterator = pages.by_page(continuation_token=continuation)
            rows = [self._codec.from_entity(e) for e in next(iterator, [])]
            return rows, iterator.continuation_token
        except AzureError as exc:
            raise _unavailable(exc) from None

    def encode(self, row: R) -> dict[str, Any]:
        return self._codec.to_entity(row)

    def decode(self, entity: Any) -> R:
        """A row of this table's type from an entity another query of the table answered (tables shared by
        several row types)."""
        return self._codec.from_entity(entity)

    def to_json(self, row: R) -> dict[str, Any]:
        """The row as JSON-safe data (the Table service's own typed JSON, and its ETag), for a queue message that
        carries a row to the worker instead of the worker reading it again; `from_json` reads it back."""
        typed = json.loads(transactions.odata_json(self._codec.to_entity(row)))
        entity = {k: v for k, v in typed.items() if v != "Edm.String" or not k.endswith("@odata.type")}
        return {"entity": entity, "etag": row.etag}

    def from_json(self, data: dict[str, Any]) -> R:
        row = self._codec.from_entity(transactions.from_odata(data["entity"]))
        row.etag = data.get("etag")
        return row

    def entities(self, filter: str, *, parameters: dict[str, Any] | None = None,
                 page_size: int = 1000) -> Iterator[Any]:
        """Entities as the service answers them (tables shared by several row types: decode each with its type's
        repository)."""
        try:
            yield from reads.query(self._client, filter, parameters, page_size)
        except AzureError as exc:
            raise _unavailable(exc) from None

    def of_keys(self, partition: str, row_keys: list[str]) -> Iterator[Any]:
        """The entities of a partition with these row keys: one filtered query per 14 keys (Table Storage allows
        15 comparisons a filter) instead of a point read each."""
        step = MAX_FILTER_COMPARISONS - 1
        for start in range(0, len(row_keys), step):
            group = row_keys[start:start + step]
            terms = " or ".join(f"RowKey eq @k{i}" for i in range(len(group)))
            parameters: dict[str, Any] = {"pk": partition, **{f"k{i}": key for i, key in enumerate(group)}}
            # Spaces inside the parentheses: the SDK finds `@name` placeholders by splitting on spaces.
            yield from self.entities(f"PartitionKey eq @pk and ( {terms} )", parameters=parameters)

    def prefixed(self, partition: str, prefix: str, *, page_size: int = 1000) -> Iterator[R]:
        """Rows of a partition whose row key starts with `prefix` (a range scan: `prefix` must end with '|')."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return self.query("PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                          parameters={"pk": partition, "lo": prefix, "hi": upper}, page_size=page_size)

    def any_of(self, partition: str, equalities: list[tuple[str, Any]]) -> list[R]:
        """Rows of a partition where any (property, value) pair matches: a few filtered queries (Table Storage
        allows 15 comparisons a filter, one of them the partition) instead of reading the whole partition."""
        rows: dict[str, R] = {}
        step = MAX_FILTER_COMPARISONS - 1
        for start in range(0, len(equalities), step):
            group = equalities[start:start + step]
            terms = " or ".join(f"{name} eq @v{i}" for i, (name, _) in enumerate(group))
            parameters: dict[str, Any] = {"pk": partition, **{f"v{i}": value for i, (_, value) in enumerate(group)}}
            # Spaces inside the parentheses: the SDK finds `@name` placeholders by splitting on spaces.
            for row in self.query(f"PartitionKey eq @pk and ( {terms} )", parameters=parameters, page_size=1000):
                rows[row.row_key()] = row
        return list(rows.values())

    def transaction(self, operations: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
        """One atomic transaction (one partition, at most 100 operations) of already encoded entities, which may
        be rows of different types sharing this table. A failed ETag condition is `ConcurrencyConflict`, and so
        is a row to update or delete that is gone (another writer's transaction got there first)."""
        if len(operations) > MAX_TRANSACTION:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACTION} operations")
        try:
            return self._submit(operations)
        except TransactionRefused as exc:
            if exc.status in (404, 409, 412) or exc.code in ("UpdateConditionNotSatisfied", "EntityAlreadyExists",
                                                             "ResourceNotFound"):
                raise ConcurrencyConflict(f"{self.table}: a row changed during the transaction") from None
            raise _unavailable(exc) from None

    def upsert_many(self, rows: Iterable[R]) -> int:
        """Upsert in transactions of at most 100 operations per partition; returns how many rows were written.

        Each transaction is atomic; a failure midway leaves earlier chunks written (upserts are idempotent, so
        the caller simply retries the whole call).
        """
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            entity = self._codec.to_entity(row)
            by_partition[entity["PartitionKey"]].append(entity)
        chunks = [chunk for entities in by_partition.values() for chunk in _batches(entities)]

        def upsert(chunk: list[dict[str, Any]]) -> None:
            try:
                self._submit([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in chunk])
            except TransactionRefused as exc:
                raise _unavailable(exc) from None

        _all_at_once(upsert, chunks)
        return sum(len(chunk) for chunk in chunks)

    def delete_many(self, keys: Iterable[tuple[str, str]]) -> int:
        """Delete rows by (partition, row) key in transactions of at most 100 per partition."""
        by_partition: dict[str, list[str]] = defaultdict(list)
        for pk, rk in keys:
            by_partition[check_key(pk)].append(check_key(rk))
        deleted = 0
        for pk, row_keys in by_partition.items():
            for start in range(0, len(row_keys), MAX_TRANSACTION):
                chunk = row_keys[start:start + MAX_TRANSACTION]
                try:
                    self._submit([("delete", {"PartitionKey": pk, "RowKey": rk}, {}) for rk in chunk])
                except TransactionRefused:
                    # One missing row fails the whole transaction; fall back to one by one (missing = done).
                    for rk in chunk:
                        self.delete(pk, rk)
                deleted += len(chunk)
        return deleted

    def _submit(self, operations: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
        if not operations:
            return []
        try:
            return transactions.submit(self._client, operations)
        except AzureError as exc:
            raise _unavailable(exc) from None


def _all_at_once(work: Callable[[T], object], parts: list[T]) -> None:
    """`work` on each part, up to TRANSACTIONS_AT_ONCE at a time, for writes whose order does not matter (a bulk
    export's 2,000 items are 20 transactions: one after another they held its first event back by their sum of
    round trips). Returns once all are done; then raises the first failure, if any."""
    if len(parts) <= 1:
        for part in parts:
            work(part)
        return
    pool = _transaction_pool()
    futures = [pool.submit(contextvars.copy_context().run, work, part) for part in parts]
    failures = [error for error in (future.exception() for future in futures) if error is not None]
    if failures:
        raise failures[0]


@functools.cache
def _transaction_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=TRANSACTIONS_AT_ONCE, thread_name_prefix="table-transactions")


def _batches(entities: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive entities in transactions of at most 100 operations and MAX_TRANSACTION_BYTES of payload."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entity in entities:
        cost = _wire_size(entity)
        if batch and (len(batch) == MAX_TRANSACTION or size + cost > MAX_TRANSACTION_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entity)
        size += cost
    if batch:
        yield batch


def _with_etag(row: R, meta: Any) -> R:
    row.etag = (meta or {}).get("etag")
    return row


def _unavailable(exc: Exception) -> DependencyUnavailable:
    detail = f" {exc.status} {exc.code}" if isinstance(exc, TransactionRefused) else ""
    log.warning("table storage call failed: %s%s", type(exc).__name__, detail)
    return DependencyUnavailable("Table Storage is unreachable or refused the request")


# Fail within seconds on an outage rather than after the SDK's long default backoff; callers retry at their level.
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 20, "retry_total": 3,
                                   "retry_backoff_factor": 0.4}


def table_service(settings: Any) -> TableServiceClient:
    """The process's table service client, from the same storage settings the Functions runtime uses."""
    from shared.storage.transport import storage_transport

    options = {**_CLIENT_OPTIONS, "transport": storage_transport()}
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    if settings.storage_account_name:
        from azure.identity import DefaultAzureCredential

        endpoint = f"https://{settings.storage_account_name}.table.{settings.storage_endpoint_suffix}"
        return TableServiceClient(endpoint, credential=DefaultAzureCredential(), **options)
    from shared.errors import ConfigurationError

    raise ConfigurationError("no storage configured: set AzureWebJobsStorage or AzureWebJobsStorage__accountName")
