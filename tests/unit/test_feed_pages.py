"""Feed entries packed into pages, and a pull's changes grouped into transactions that fit Table Storage."""

import json
from datetime import UTC, datetime

from shared.models import ExternalEvent, FeedEntry
from shared.pull import Change, _transactions
from shared.storage.repositories import Feed
from shared.storage.tables import MAX_TRANSACTION, RowCodec

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def entry(seq, subject="Booked in Outlook"):
    return FeedEntry(system="sys", subject_id="r1", seq=seq, change="created", event_id=f"AAMk{seq:040d}",
                     data={"subject": subject, "start": "2026-12-01T10:00:00Z"}, published_at=NOW)


def test_pages_hold_consecutive_entries_within_a_string_propertys_limit():
    entries = [entry(seq, "ü" * 200) for seq in range(1, 301)]  # non-ASCII: six JSON characters each
    pages = Feed.pack(entries)
    assert len(pages) > 1
    codec = RowCodec(type(pages[0]))
    for page in pages:
        stored = codec.to_entity(page)["entries"]
        assert len(stored) <= Feed.PAGE_CHARS and stored.isascii()
        assert page.row_key() == f"feed|{page.last_seq:012d}"
        assert [e.seq for e in page.unpack()] == list(range(page.first_seq, page.last_seq + 1))
    assert [e for p in pages for e in p.unpack()] == entries
    assert codec.from_entity(codec.to_entity(pages[0])).unpack() == pages[0].unpack()


def change(seq, subject):
    event = ExternalEvent(system="sys", subject_id="r1", event_id=f"AAMk{seq:040d}", subject=subject,
                          start_utc=NOW, end_utc=NOW, first_seen_at=NOW)
    return Change("created", event.event_id, {"subject": subject, "creator": {"name": subject}}, upsert=event)


def test_a_pulls_changes_are_grouped_so_each_transaction_fits():
    for subject in ("Short", "ü" * 255, "x" * 2000):
        changes = [change(seq, subject) for seq in range(1, 1001)]
        groups = _transactions(changes)
        assert [c for g in groups for c in g] == changes
        for group in groups:
            entries = [FeedEntry(system="sys", subject_id="r1", seq=i, change=c.change, event_id=c.event_id,
                                 data=c.data) for i, c in enumerate(group)]
            operations = len(group) + len(Feed.pack(entries)) + 1  # stored rows, feed pages, the state
            assert operations <= MAX_TRANSACTION
        assert len(groups) <= 1000 // 40 + 1  # and still many changes a transaction
    assert _transactions([]) == [[]]  # a pull that found nothing still commits its state


def test_entries_json_is_compact_ascii():
    [page] = Feed.pack([entry(1, "Café")])
    assert json.loads(RowCodec(type(page)).to_entity(page)["entries"])[0][3]["subject"] == "Café"
