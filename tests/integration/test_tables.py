"""Repositories against a real Azurite table service."""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import requests
from azure.core import MatchConditions
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient, UpdateMode

from devstack.azurite import Azurite
from devstack.ports import free_port
from shared.errors import AlreadyExists, ConcurrencyConflict, DependencyUnavailable, NotFound, PayloadTooLarge
from shared.storage import transactions
from shared.storage.tables import Row, TableRepository, check_key


@dataclass(kw_only=True)
class Booking(Row):
    system: str
    booking_id: str
    title: str = ""
    seats: int = 0
    big: int = 0
    price: float = 0.0
    confirmed: bool = False
    starts: datetime | None = None
    blob: bytes | None = None
    slots: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def partition_key(self) -> str:
        return self.system

    def row_key(self) -> str:
        return self.booking_id


class Bookings(TableRepository[Booking]):
    table = "bookings"
    row_type = Booking


@pytest.fixture
def repo(storage_connection_string, table_prefix) -> Bookings:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    repo = Bookings(service, prefix=table_prefix)
    repo.ensure_table()
    repo.ensure_table()  # idempotent
    return repo


def test_round_trip_keeps_every_type(repo):
    starts = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    row = Booking(system="s1", booking_id="b1", title="Room 101 — Ada", seats=4, big=2**40, price=12.5,
                  confirmed=True, starts=starts, blob=b"\x00\x01", slots=[{"k": "2026-03-29"}], meta={"a": 1})
    written = repo.insert(row)
    assert written.etag
    read = repo.get("s1", "b1")
    assert read == row
    assert read.big == 2**40 and isinstance(read.big, int)
    assert read.starts == starts and read.starts.tzinfo is not None
    assert read.etag == written.etag


def test_missing_row_reads_as_none_and_require_raises(repo):
    assert repo.get("s1", "nope") is None
    with pytest.raises(NotFound):
        repo.require("s1", "nope", "booking")


def test_duplicate_insert_is_a_domain_error(repo):
    repo.insert(Booking(system="s1", booking_id="b1"))
    with pytest.raises(AlreadyExists):
        repo.insert(Booking(system="s1", booking_id="b1"))


def test_update_with_stale_etag_loses_the_race(repo):
    repo.insert(Booking(system="s1", booking_id="b1", seats=1))
    first = repo.get("s1", "b1")
    second = repo.get("s1", "b1")
    first.seats = 2
    repo.update(first)
    second.seats = 3
    with pytest.raises(ConcurrencyConflict):
        repo.update(second)
    assert repo.get("s1", "b1").seats == 2


def test_update_of_a_row_deleted_meanwhile_is_a_conflict(repo):
    repo.insert(Booking(system="s1", booking_id="b1"))
    row = repo.get("s1", "b1")
    repo.delete("s1", "b1")
    with pytest.raises(ConcurrencyConflict):
        repo.update(row)


def test_conditional_delete_and_missing_delete(repo):
    repo.insert(Booking(system="s1", booking_id="b1"))
    stale = repo.get("s1", "b1")
    repo.update(repo.get("s1", "b1"))
    with pytest.raises(ConcurrencyConflict):
        repo.delete("s1", "b1", etag=stale.etag)
    repo.delete("s1", "b1")
    repo.delete("s1", "b1")  # already gone counts as done
    assert repo.get("s1", "b1") is None


def test_upsert_many_chunks_over_100_per_partition(repo):
    rows = [Booking(system=f"s{i % 2}", booking_id=f"b{i:04d}", seats=i) for i in range(250)]
    assert repo.upsert_many(rows) == 250
    assert sum(1 for _ in repo.partition("s0")) == 125
    assert sum(1 for _ in repo.partition("s1")) == 125
    # upserting again is idempotent
    assert repo.upsert_many(rows) == 250
    assert sum(1 for _ in repo.query()) == 250


def test_a_json_field_longer_than_a_string_property_is_stored_in_parts(repo):
    """A string property holds 64 KiB (32K UTF-16 units); Azurite refuses more (PropertyValueTooLarge)."""
    slots = [{"key": f"{n:06d}".ljust(64, "x"), "zone": "America/Argentina/ComodRivadavia"} for n in range(1500)]
    row = Booking(system="s1", booking_id="long", slots=slots, meta={"note": "\u00e9" * 40_000})
    repo.upsert(row)
    assert repo.get("s1", "long") == row
    shorter = Booking(system="s1", booking_id="long", slots=slots[:2])
    repo.upsert(shorter)  # a replace: the longer version's parts are gone
    assert repo.get("s1", "long") == shorter
    assert repo.upsert_many([row]) == 1 and repo.get("s1", "long") == row


def test_a_row_storage_would_refuse_for_its_size_is_a_413_before_sending(repo):
    with pytest.raises(PayloadTooLarge, match="title"):
        repo.upsert(Booking(system="s1", booking_id="t", title="a" * 40_000))
    with pytest.raises(PayloadTooLarge, match="1 MiB"):
        repo.upsert(Booking(system="s1", booking_id="t", slots=["a" * 1000] * 600))
    assert repo.get("s1", "t") is None


def test_upsert_many_keeps_each_transaction_under_4_mib(repo):
    rows = [Booking(system="s1", booking_id=f"b{i:03d}", slots=["e" * 30_000] * 3, title="\u00e9" * 8000)
            for i in range(40)]
    assert repo.upsert_many(rows) == 40  # about 5 MiB of JSON: two transactions, not one
    assert [r.booking_id for r in repo.partition("s1")] == [r.booking_id for r in rows]


def test_delete_many_tolerates_missing_rows(repo):
    repo.upsert_many(Booking(system="s1", booking_id=f"b{i:03d}") for i in range(120))
    keys = [("s1", f"b{i:03d}") for i in range(130)]  # ten never existed
    repo.delete_many(keys)
    assert list(repo.partition("s1")) == []


def test_query_pages_lazily(repo):
    repo.upsert_many(Booking(system="s1", booking_id=f"b{i:03d}", seats=i) for i in range(30))
    iterator = repo.query("PartitionKey eq @pk and seats ge @min", parameters={"pk": "s1", "min": 10}, page_size=7)
    first = next(iterator)
    assert first.seats >= 10
    assert len([first, *iterator]) == 20


def test_page_with_continuation_walks_everything_once(repo):
    repo.upsert_many(Booking(system="s1", booking_id=f"b{i:03d}") for i in range(23))
    seen, token = [], None
    while True:
        rows, token = repo.page("PartitionKey eq @pk", parameters={"pk": "s1"}, page_size=10, continuation=token)
        seen.extend(r.booking_id for r in rows)
        if token is None:
            break
    assert seen == [f"b{i:03d}" for i in range(23)]


def test_filter_values_are_parameters_not_string_formatting(repo):
    repo.insert(Booking(system="s1", booking_id="b1", title="O'Brien"))
    rows = list(repo.query("title eq @t", parameters={"t": "O'Brien"}))
    assert [r.booking_id for r in rows] == ["b1"]


@pytest.mark.parametrize("bad", ["a/b", "a#b", "a?b", "a\\b", "a\nb", ""])
def test_invalid_keys_are_refused_before_any_call(bad):
    with pytest.raises(ValueError, match="not a valid table key"):
        check_key(bad)


def test_naive_datetimes_are_refused(repo):
    with pytest.raises(ValueError, match="naive datetime"):
        repo.insert(Booking(system="s1", booking_id="b1", starts=datetime(2026, 1, 1)))


def test_storage_outage_is_a_domain_error(table_prefix):
    own = Azurite(free_port(), free_port()).start()
    service = TableServiceClient.from_connection_string(own.connection_string, retry_total=0)
    repo = Bookings(service, prefix=table_prefix)
    repo.ensure_table()
    own.stop()
    with pytest.raises(DependencyUnavailable, match="Table Storage"):
        repo.get("s1", "b1")
    with pytest.raises(DependencyUnavailable):
        list(repo.query())


def test_any_of_reads_only_matching_rows_over_several_filters(repo):
    """Table Storage allows 15 comparisons a filter: 30 keys take three queries, and rows matched twice (by two
    properties) come back once."""
    repo.upsert_many(Booking(system="s1", booking_id=f"b{i:02d}", title=f"t{i % 7}") for i in range(40))
    repo.upsert_many(Booking(system="s2", booking_id=f"b{i:02d}") for i in range(5))  # another partition
    wanted = [f"b{i:02d}" for i in range(0, 40, 2)]  # 20
    found = repo.any_of("s1", [("RowKey", key) for key in wanted] + [("title", "t3"), ("RowKey", "b00"),
                                                                      ("RowKey", "nope'or'1'eq'1")])
    keys = sorted(b.booking_id for b in found)
    assert keys == sorted(set(wanted) | {f"b{i:02d}" for i in range(40) if i % 7 == 3})
    assert all(b.system == "s1" for b in found)
    assert repo.any_of("s1", []) == []


def test_sync_records_of_events_and_overlapping(storage_connection_string, table_prefix):
    from shared.models import SyncRecord, connection_partition
    from shared.storage.repositories import SyncRecords

    records = SyncRecords(TableServiceClient.from_connection_string(storage_connection_string), prefix=table_prefix)
    records.ensure_table()
    day = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [SyncRecord(system="s", kind="space", subject_id="r1", item_id=f"i{i}", occurrence_key="o",
                       event_id=f"ev{i}" if i < 18 else None, transaction_id=f"tx{i}",
                       start_utc=day.replace(hour=i), end_utc=day.replace(hour=i + 1)) for i in range(20)]
    records.upsert_many(rows)
    partition = connection_partition("s", "space", "r1")
    found = records.of_events(partition, [f"ev{i}" for i in range(0, 18, 3)] + ["ev-unknown"], ["tx19", "tx0"])
    assert sorted(r.item_id for r in found) == ["i0", "i12", "i15", "i19", "i3", "i6", "i9"]
    over = records.overlapping(partition, day.replace(hour=5, minute=30), day.replace(hour=7))
    assert sorted(r.item_id for r in over) == ["i5", "i6"]  # i7 starts as the range ends


def test_transaction_of_every_kind_applies_all_and_returns_each_new_etag(repo):
    pk = "it's ä room"
    kept = repo.insert(Booking(system=pk, booking_id="kept", title="old"))
    repo.insert(Booking(system=pk, booking_id="merged", title="old", seats=3))
    repo.insert(Booking(system=pk, booking_id="gone"))
    operations = [
        ("create", repo.encode(Booking(system=pk, booking_id="new one", big=2**40)), {}),
        ("upsert", repo.encode(Booking(system=pk, booking_id="o'brien", title="replaced")),
         {"mode": UpdateMode.REPLACE}),
        ("upsert", {"PartitionKey": pk, "RowKey": "merged", "title": "merged"}, {"mode": UpdateMode.MERGE}),
        ("update", repo.encode(Booking(system=pk, booking_id="kept", title="new")),
         {"mode": UpdateMode.REPLACE, "etag": kept.etag, "match_condition": MatchConditions.IfNotModified}),
        ("delete", {"PartitionKey": pk, "RowKey": "gone"}, {}),
    ]
    results = repo.transaction(operations)
    assert len(results) == 5 and all(r["etag"] for r in results[:4])
    assert repo.get(pk, "new one").big == 2**40
    assert repo.get(pk, "o'brien").title == "replaced"
    merged = repo.get(pk, "merged")
    assert (merged.title, merged.seats) == ("merged", 3)  # a merge keeps what it does not name
    assert repo.get(pk, "kept").title == "new" and repo.get(pk, "kept").etag == results[3]["etag"]
    assert repo.get(pk, "gone") is None


def test_transaction_with_a_stale_etag_is_a_conflict_and_applies_nothing(repo):
    stale = repo.insert(Booking(system="s", booking_id="b", title="v1"))
    repo.update(Booking(system="s", booking_id="b", title="v2", etag=stale.etag))
    operations = [
        ("upsert", repo.encode(Booking(system="s", booking_id="other")), {"mode": UpdateMode.REPLACE}),
        ("update", repo.encode(Booking(system="s", booking_id="b", title="v3")),
         {"mode": UpdateMode.REPLACE, "etag": stale.etag, "match_condition": MatchConditions.IfNotModified}),
    ]
    with pytest.raises(ConcurrencyConflict):
        repo.transaction(operations)
    assert repo.get("s", "other") is None
    assert repo.get("s", "b").title == "v2"


def test_transaction_limits_are_checked_before_sending(repo):
    with pytest.raises(ValueError, match="100"):
        repo.transaction([("upsert", repo.encode(Booking(system="s", booking_id=f"b{i}")), {})
                          for i in range(101)])
    assert repo.transaction([]) == []


def test_transaction_bodies_are_the_sdks_own_but_for_boundaries_and_dates(storage_connection_string, table_prefix):
    session = requests.Session()
    session.trust_env = False
    sent: list[bytes] = []
    session.hooks["response"] = [lambda response, *args, **kwargs: sent.append(response.request.body)]
    service = TableServiceClient.from_connection_string(storage_connection_string,
                                                        transport=RequestsTransport(session=session))
    table = service.create_table(f"{table_prefix}body")
    stale = table.create_entity({"PartitionKey": "p'1", "RowKey": "kept"})["etag"]
    operations = [
        ("create", {"PartitionKey": "p'1", "RowKey": "n ew", "n": 7, "when": datetime(2026, 1, 2, tzinfo=UTC)}, {}),
        ("upsert", {"PartitionKey": "p'1", "RowKey": "r", "s": "é"}, {"mode": UpdateMode.REPLACE}),
        ("upsert", {"PartitionKey": "p'1", "RowKey": "m", "b": b"\x00"}, {"mode": UpdateMode.MERGE}),
        ("update", {"PartitionKey": "p'1", "RowKey": "kept", "x": 1.5},
         {"mode": UpdateMode.REPLACE, "etag": stale, "match_condition": MatchConditions.IfNotModified}),
    ]
    sent.clear()
    table.submit_transaction(operations)
    table.delete_entity("p'1", "n ew")  # so the same create succeeds again
    operations[3][2]["etag"] = table.get_entity("p'1", "kept").metadata["etag"]
    sdk_body = sent[0]
    sent.clear()
    transactions.submit(table, [(k, e, {**o, "etag": operations[3][2]["etag"]} if k == "update" else o)
                                for k, e, o in operations])

    def normal(body: bytes) -> str:
        text = re.sub(r"(batch|changeset)_[0-9a-f-]{36}", r"\1_B", body.decode())
        text = re.sub(r"(Date: |x-ms-date: )[^\r]*", r"\1D", text)
        return re.sub(r"If-Match: [^\r]*", "If-Match: E", text)

    assert normal(sent[0]) == normal(sdk_body)


def test_point_reads_and_queries_read_what_the_sdk_reads(repo):
    """Reads are decoded here, not by the SDK (shared/storage/reads.py): every type, keys and filter values that
    need escaping, and a query's continuation, read back exactly as the SDK's own entities do."""
    starts = datetime(2026, 3, 29, 0, 30, 5, 123456, tzinfo=UTC)
    odd = "it's a 'room' № 5 | b#"[:-2]  # quotes, non-ASCII, a space and a bar; '#' is refused in keys
    rows = [Booking(system="p'1 ü", booking_id=f"{odd}-{n:03d}", title=f"T'{n} — Ada", seats=n, big=2**40 + n,
                    price=n / 4, confirmed=n % 2 == 0, starts=starts, blob=bytes([n % 256, 0]),
                    slots=[{"n": n}], meta={"odd": odd}) for n in range(250)]
    repo.upsert_many(rows)
    sdk = {e["RowKey"]: repo.decode(e) for e in repo._client.query_entities(
        "PartitionKey eq @pk", parameters={"pk": "p'1 ü"}, results_per_page=100)}
    ours = list(repo.query("PartitionKey eq @pk and title ge @t", parameters={"pk": "p'1 ü", "t": "T'"},
                           page_size=100))  # three pages
    assert [r.row_key() for r in ours] == sorted(sdk) and ours == [sdk[r.row_key()] for r in ours]
    assert all(r.etag and r.etag == sdk[r.row_key()].etag for r in ours)
    one = repo.get("p'1 ü", f"{odd}-007")
    assert one == rows[7] and one.etag == sdk[one.row_key()].etag and one.starts == starts
    assert repo.get("p'1 ü", f"{odd}-999") is None
    assert [r.seats for r in repo.query("PartitionKey eq @pk and starts eq @s and big gt @b",
                                        parameters={"pk": "p'1 ü", "s": starts, "b": 2**40 + 247})] == [248, 249]
