"""Writing items' occurrences to one mailbox: decide what each occurrence needs, send it in batches, record the
outcome. Safe to run again at any point (after a crash, a timeout, a redelivered queue message):

- before a create is sent, its record is saved with the generation that fixes its `transactionId`, so a create
  repeated after a lost answer returns the event the first one made;
- that save is a claim, written with the row's ETag (or as a new row): a push elsewhere that finds a live claim,
  or loses the write, does not create; it defers (a retry when the claim ends, which finds the sync ID). Graph's
  transactionId dedup is best-effort (two concurrent creates with one transactionId were both accepted on real
  Graph), so the claim is what stops a duplicate. A claim ends (CLAIM_LEASE) so a holder that died does not hold
  the occurrence for ever, and its holder never sends the create after CLAIM_SEND_WINDOW, so a create still in
  flight when the claim ends is one sent at least CLAIM_LEASE - CLAIM_SEND_WINDOW earlier;
- a Retry-After longer than the executor sleeps is honoured in full: the occurrences come back pending with
  `not_before`, and go to the retry table due then (or, with `hand_back`, to the caller, who re-queues its work);
- an update that finds the event deleted in Outlook creates it anew (generation + 1): the host says it exists;
- a create refused with ErrorDuplicateTransactionId (the first attempt landed with older content) looks that
  event up by its marker (a documented extended-property filter; Graph does not document `transactionId` as
  filterable) and updates it, but only an event whose marker and transactionId are exactly this occurrence's:
  the transactionId is keyed (HMAC, key in Key Vault), so an event someone else made is never adopted;
- deletes of events already gone count as done;
- failures that may pass go to the retry table; those that cannot are recorded as failed with Microsoft's code.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from shared.clock import Clock, utcnow
from shared.export.content import (
    Occurrence,
    carries_marker,
    content_hash,
    event_body,
    marker,
    marker_lookup_query,
    transaction_id,
)
from shared.graph.batch import BatchExecutor, GraphRequest, GraphResult
from shared.graph.client import TokenSource
from shared.models import FAILED, PENDING, SYNCED, Item, RetryEntry, SyncRecord
from shared.storage.repositories import Retries, SyncRecords

log = logging.getLogger(__name__)

TRANSIENT = {0, 408, 409, 412, 429, 500, 502, 503, 504}
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
                timedelta(hours=4))
CLAIM_LEASE = timedelta(seconds=30)
CLAIM_SEND_WINDOW = timedelta(seconds=20)  # creates of a claim are sent within this, or not at all
CLAIMED_ELSEWHERE = "ClaimedElsewhere"


@dataclass(frozen=True)
class Target:
    """A connection's mailbox and calendar, and how to get its tokens."""

    token: TokenSource
    mailbox: str  # address, the per-mailbox throttling key
    own_mailbox: bool
    calendar_id: str | None

    @property
    def root(self) -> str:
        return "/me" if self.own_mailbox else f"/users/{quote(self.mailbox, safe='@')}"

    def create_url(self) -> str:
        if self.calendar_id:
            return f"{self.root}/calendars/{quote(self.calendar_id, safe='')}/events"
        return f"{self.root}/calendar/events"

    def event_url(self, event_id: str) -> str:
        return f"{self.root}/events/{quote(event_id, safe='')}"


@dataclass
class Outcome:
    item_id: str
    occurrence_key: str
    state: str  # synced, pending, failed, deleted, unchanged
    event_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    exhausted: bool = False  # retries ran out just now
    not_before: datetime | None = None  # deferred (throttled, or claimed elsewhere): not to be tried before this

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.occurrence_key, "sync_id": self.event_id, "state": self.state}
        if self.error_code:
            data["error"] = {"microsoft_code": self.error_code, "message": self.error_message}
        return data


@dataclass
class _Op:
    kind: str  # create, update, delete, lookup
    record: SyncRecord
    body: dict[str, Any] | None = None
    hash: str = ""
    occurrence: Occurrence | None = None
    had_retry: bool = False  # the record may have a retry entry to clear
    foreign: bool = False  # another push holds the record's claim: its row is not ours to write
    not_before: datetime | None = None

    def __post_init__(self) -> None:
        # A deferral (throttled, claimed elsewhere) leaves an error code but no attempt counted.
        self.had_retry = self.had_retry or self.record.attempts > 0 or bool(self.record.last_error_code)


@dataclass
class Desired:
    """An item and the title mode its space's location asks for."""

    item: Item
    title_mode: str = "patron_name"


class SyncEngine:
    def __init__(self, records: SyncRecords, retries: Retries, executor: BatchExecutor, clock: Clock = utcnow,
                 *, transaction_key: Callable[[], bytes], max_attempts: int = len(RETRY_DELAYS)) -> None:
        self._transaction_key = transaction_key  # read when a create is first planned, then cached by the source
        self._records = records
        self._retries = retries
        self._executor = executor
        self._clock = clock
        self._max_attempts = max_attempts
        self._turns = _Turns()

    def graph_stats(self) -> dict[str, int]:
        """Round trips, batches and retries of this process's Graph batches (benchmarks report them)."""
        return self._executor.stats.snapshot()

    # --- planning ----------------------------------------------------------------------------------------------

    def push(self, target: Target, wanted: Sequence[Desired], *, mode: str = "upsert",
             asserted_since: datetime | None = None, only: set[tuple[str, str]] | None = None,
             hand_back: bool = False) -> list[Outcome]:
        """Make Outlook match `wanted`. Modes: "upsert" writes what changed; "missing" only creates what was never
        exported; "all" re-asserts every event (updates in place, recreates those deleted in Outlook), skipping
        those already asserted since `asserted_since` (a redelivered job chunk). Only "upsert" (the item API, whose
        occurrence list is complete) deletes events of occurrences the item no longer has; bulk exports carry
        future occurrences only. `only` limits the work to some occurrences (the retry drain). With `hand_back`,
        deferred occurrences (`Outcome.not_before`) get no retry entry: the caller re-queues its work unit."""
        with self._turns.turn(target.mailbox) as turn:
            return self._push(target, wanted, mode, asserted_since, only, hand_back, turn)

    def _push(self, target: Target, wanted: Sequence[Desired], mode: str, asserted_since: datetime | None,
              only: set[tuple[str, str]] | None, hand_back: bool, turn: _Turn) -> list[Outcome]:
        ops: list[_Op] = []
        outcomes: list[Outcome] = []
        loaded: dict[str, dict[str, SyncRecord]] = {}
        if wanted:
            partition = wanted[0].item.partition_key()
            for record in self._records.of_items(partition, [w.item.item_id for w in wanted]):
                loaded.setdefault(record.item_id, {})[record.occurrence_key] = record
        for want in wanted:
            item = want.item
            existing = loaded.get(item.item_id, {})
            for raw in item.occurrences:
                occurrence = Occurrence.from_json(raw)
                if only is not None and (item.item_id, occurrence.key) not in only:
                    continue
                body = event_body(item, occurrence, want.title_mode)
                digest = content_hash(body)
                record = existing.pop(occurrence.key, None)
                op = self._plan(item, occurrence, record, body, digest, mode, asserted_since)
                if op is None:  # only an exported occurrence is left unchanged, so the record exists
                    outcomes.append(Outcome(item.item_id, occurrence.key, "unchanged",
                                            record.event_id if record else None))
                else:
                    ops.append(op)
            if mode == "upsert":
                for record in existing.values():  # occurrences the host removed
                    if only is None or (item.item_id, record.occurrence_key) in only:
                        ops.append(_Op("delete", record))
        return outcomes + self._execute(target, ops, hand_back, turn)

    def remove(self, target: Target, records: Sequence[SyncRecord]) -> list[Outcome]:
        """Delete the events of these records (a cancelled item, a removed authorization)."""
        return self._execute(target, [_Op("delete", r) for r in records])

    def _plan(self, item: Item, occurrence: Occurrence, record: SyncRecord | None, body: dict[str, Any],
              digest: str, mode: str, asserted_since: datetime | None) -> _Op | None:
        if record is None:
            record = SyncRecord(system=item.system, kind=item.kind, subject_id=item.subject_id,
                                item_id=item.item_id, occurrence_key=occurrence.key)
        record.start_utc, record.end_utc = occurrence.start_utc, occurrence.end_utc
        if not record.event_id:
            return _Op("create", record, body, digest, occurrence)
        if mode == "missing":
            return None
        if mode == "upsert" and record.state == SYNCED and record.content_hash == digest:
            return None
        if (mode == "all" and asserted_since is not None and record.state == SYNCED
                and record.content_hash == digest and record.synced_at and record.synced_at >= asserted_since):
            return None
        return _Op("update", record, body, digest, occurrence)

    # --- executing ---------------------------------------------------------------------------------------------

    def _execute(self, target: Target, ops: list[_Op], hand_back: bool = False,
                 turn: _Turn | None = None) -> list[Outcome]:
        owner = uuid.uuid4().hex  # per push: two pushes in one process exclude each other too
        outcomes: list[Outcome] = []
        for op in ops:
            if op.kind == "delete" and not op.record.event_id:  # never reached Outlook: nothing to delete there
                op.record.state = "deleted"
                outcomes.append(Outcome(op.record.item_id, op.record.occurrence_key, "deleted"))
            elif op.kind == "create":
                op.record.state = PENDING
        round_ops = [op for op in ops if op.record.state != "deleted"]
        for _ in range(3):  # the first pass, then follow-ups (re-creates, transactionId look-ups, their updates)
            if not round_ops:
                break
            # The round's creates are recorded with their transactionIds before any is sent (one table
            # transaction per 100): a room pull then knows the event is ours before its ID is known, and after a
            # crash the retry reuses the same transactionId. The batches then go out pipelined, up to the
            # mailbox's concurrency, with no storage round trip between them.
            # Each create's record is its claim too (see the module docstring).
            creates = [op for op in round_ops if op.kind == "create"]
            for op in creates:
                record = op.record
                if not record.transaction_id:  # kept while the generation lasts: a retry repeats it exactly
                    record.transaction_id = transaction_id(self._transaction_key(), _item_of(record),
                                                           record.occurrence_key, record.generation)
            for op in self._claim(creates, owner):
                outcomes.append(Outcome(op.record.item_id, op.record.occurrence_key, PENDING, None,
                                        CLAIMED_ELSEWHERE, "another instance is creating this event; "
                                        "retried when its claim ends", not_before=op.not_before))
            round_ops = [op for op in round_ops if not op.foreign]
            if turn is not None:
                turn.end()  # claimed: the mailbox's next push may read and claim while this one sends
            send_by = self._executor.now() + CLAIM_SEND_WINDOW.total_seconds()
            results = self._executor.run(target.token, target.mailbox,
                                         [self._request(target, str(i), op, send_by)
                                          for i, op in enumerate(round_ops)])
            follow_ups: list[_Op] = []
            for op, result in zip(round_ops, results, strict=True):
                follow = self._apply(op, result, outcomes)
                if follow is not None:
                    follow_ups.append(follow)
            round_ops = follow_ups
        for op in round_ops:  # follow-ups that the rounds did not reach: leave them to the retry table
            outcomes.append(self._transient(op, GraphResult("", 0, None, "FollowUpPending", 0)))
        self._persist(ops, outcomes, owner, hand_back)
        return outcomes

    def _claim(self, creates: list[_Op], owner: str) -> list[_Op]:
        """Claim the creates' records (one conditional write per 100); answers those claimed elsewhere, marked
        foreign with when to look again."""
        now = self._clock()
        mine: list[_Op] = []
        lost: list[_Op] = []
        for op in creates:
            record = op.record
            if record.claim_owner not in (None, owner) and record.claim_until and record.claim_until > now:
                lost.append(op)  # read with a live claim of another push
                continue
            record.claim_owner, record.claim_until = owner, now + CLAIM_LEASE
            mine.append(op)
        refused = {(r.partition_key(), r.row_key()) for r in self._records.claim_many([op.record for op in mine])}
        lost.extend(op for op in mine if (op.record.partition_key(), op.record.row_key()) in refused)
        deferred: list[_Op] = []
        for op in lost:
            fresh = self._records.get(op.record.partition_key(), op.record.row_key())
            if fresh is not None and not fresh.event_id and fresh.claim_until and fresh.claim_until > now:
                op.foreign, op.not_before = True, min(fresh.claim_until, now + RETRY_DELAYS[0])
                deferred.append(op)
                continue
            if fresh is None or not fresh.event_id:  # no live claim and no event: claim it on the row as it is now
                record = op.record
                record.etag = fresh.etag if fresh is not None else None
                record.claim_owner, record.claim_until = owner, now + CLAIM_LEASE
                if not self._records.claim_many([record]):
                    continue  # ours after all
            op.foreign, op.not_before = True, now  # changed otherwise (its event was made meanwhile): look again
            deferred.append(op)
        if deferred:
            log.info("%d create(s) claimed by another instance; deferred", len(deferred))
        return deferred

    def _request(self, target: Target, request_id: str, op: _Op, send_by: float | None = None) -> GraphRequest:
        record = op.record
        if op.kind == "create":
            body = {**(op.body or {}), "transactionId": record.transaction_id}
            return GraphRequest(request_id, "POST", target.create_url(), body, send_by=send_by)
        if op.kind == "update":
            return GraphRequest(request_id, "PATCH", target.event_url(record.event_id or ""), op.body)
        if op.kind == "lookup":
            value = marker(_item_of(record), record.occurrence_key)
            return GraphRequest(request_id, "GET", f"{target.root}/events?{marker_lookup_query(value)}")
        return GraphRequest(request_id, "DELETE", target.event_url(record.event_id or ""))

    def _apply(self, op: _Op, result: GraphResult, outcomes: list[Outcome]) -> _Op | None:
        record, status = op.record, result.status
        now = self._clock()
        if op.kind == "delete" and (200 <= status < 300 or result.gone):
            record.state = "deleted"
            outcomes.append(Outcome(record.item_id, record.occurrence_key, "deleted", record.event_id))
            return None
        if op.kind in ("create", "update") and 200 <= status < 300:
            record.event_id = str((result.body or {}).get("id") or record.event_id)
            record.state, record.content_hash, record.synced_at = SYNCED, op.hash, now
            record.subject = str((op.body or {}).get("subject", ""))
            record.attempts, record.last_error_code, record.last_error_message = 0, None, None
            outcomes.append(Outcome(record.item_id, record.occurrence_key, SYNCED, record.event_id))
            return None
        if op.kind == "update" and status == 404:
            record.generation += 1  # deleted in Outlook: the host says it exists, so create it again
            record.event_id, record.state, record.transaction_id = None, PENDING, ""
            return _Op("create", record, op.body, op.hash, op.occurrence)
        if op.kind == "create" and result.error_code == "ErrorDuplicateTransactionId":
            return _Op("lookup", record, op.body, op.hash, op.occurrence)
        if op.kind == "lookup" and 200 <= status < 300:
            found = self._ours(record, result.body)
            if found:
                record.event_id = found
                return _Op("update", record, op.body, op.hash, op.occurrence)
            # Our transactionId is taken but no event carries both it and our marker (deleted meanwhile, or
            # tampered with): never adopt what is there; create the occurrence anew under a new transactionId.
            log.warning("no event carries the marker and transactionId of %s/%s; creating it anew",
                        record.item_id, record.occurrence_key)
            record.generation += 1
            record.transaction_id = ""
            return _Op("create", record, op.body, op.hash, op.occurrence)
        if result.retry_after is not None:  # throttled for longer than the executor sleeps: not before then
            op.not_before = now + timedelta(seconds=result.retry_after)
            record.state, record.last_error_code = PENDING, result.error_code or f"HTTP{status}"
            record.last_error_message = _message(result)
            outcomes.append(Outcome(record.item_id, record.occurrence_key, PENDING, record.event_id,
                                    record.last_error_code, record.last_error_message, not_before=op.not_before))
            return None
        if status in TRANSIENT or status >= 500:
            outcomes.append(self._transient(op, result))
            return None
        record.state = FAILED
        record.last_error_code, record.last_error_message = result.error_code or str(status), _message(result)
        outcomes.append(Outcome(record.item_id, record.occurrence_key, FAILED, record.event_id,
                                record.last_error_code, record.last_error_message))
        return None

    @staticmethod
    def _ours(record: SyncRecord, body: Any) -> str | None:
        """The ID of the event a marker look-up found that is this occurrence's own: exactly its marker (the
        filter compares values case-insensitively) and the transactionId its create carried."""
        value = marker(_item_of(record), record.occurrence_key)
        found = body.get("value") if isinstance(body, dict) else None
        for event in found if isinstance(found, list) else []:
            if (isinstance(event, dict) and event.get("id") and event.get("transactionId") == record.transaction_id
                    and carries_marker(event, value)):
                return str(event["id"])
        return None

    def _transient(self, op: _Op, result: GraphResult) -> Outcome:
        record = op.record
        record.attempts += 1
        record.last_error_code = result.error_code or (f"HTTP{result.status}" if result.status else "Unreachable")
        record.last_error_message = _message(result)
        exhausted = record.attempts >= self._max_attempts
        record.state = FAILED if exhausted else PENDING
        return Outcome(record.item_id, record.occurrence_key, record.state, record.event_id, record.last_error_code,
                       record.last_error_message, exhausted=exhausted)

    def _persist(self, ops: list[_Op], outcomes: list[Outcome], owner: str, hand_back: bool) -> None:
        gone = [op.record for op in ops if op.record.state == "deleted"]
        kept = [op.record for op in ops if op.record.state != "deleted" and not op.foreign]
        for record in kept:
            if record.claim_owner == owner:  # the create is answered (or will not be sent): the claim ends
                record.claim_owner = record.claim_until = None
        self._records.upsert_many(kept)
        self._records.delete_many((r.partition_key(), r.row_key()) for r in gone)
        by_key = {(o.item_id, o.occurrence_key): o for o in outcomes}
        retry, clear = [], []
        for op in ops:
            record = op.record
            outcome = by_key.get((record.item_id, record.occurrence_key))
            entry = RetryEntry(system=record.system, kind=record.kind, subject_id=record.subject_id,
                               item_id=record.item_id, occurrence_key=record.occurrence_key,
                               next_attempt_at=self._clock(), attempts=record.attempts,
                               last_error_code=record.last_error_code)
            if outcome is not None and outcome.state == PENDING:
                if outcome.not_before is not None:
                    if hand_back:
                        continue  # the caller re-queues its work unit for then
                    entry.next_attempt_at = outcome.not_before
                else:
                    entry.next_attempt_at = self._clock() + RETRY_DELAYS[max(min(record.attempts,
                                                                                 len(RETRY_DELAYS)), 1) - 1]
                retry.append(entry)
            elif op.had_retry:
                clear.append((entry.partition_key(), entry.row_key()))
        self._retries.upsert_many(retry)
        self._retries.delete_many(clear)


def _item_of(record: SyncRecord) -> Item:
    """Enough of an item to derive its marker and transactionId (both depend only on its identity)."""
    return Item(system=record.system, kind=record.kind, subject_id=record.subject_id, item_id=record.item_id)


def _message(result: GraphResult) -> str:
    error = (result.body or {}).get("error") if isinstance(result.body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    return "Microsoft Graph could not be reached" if result.status == 0 else f"HTTP {result.status}"


class _Turn:
    """A push's turn at its mailbox: held from reading its records until its creates are claimed."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock: threading.Lock | None = lock

    def end(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


class _Turns:
    """One push at a time per mailbox in this process reads its records and claims its creates. The pushes of a
    job's chunks arrive together, but the mailbox takes one `$batch` at a time (Outlook runs 4 requests of a
    mailbox at once): taking turns, the first chunk reads, claims and sends while the next reads and claims,
    instead of every chunk's reads and claims queueing at storage before any `$batch` is sent (a 2,000-occurrence
    job's first event waited half a second for the other nine chunks' storage work)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # mailbox -> (lock, pushes holding or waiting)

    @contextlib.contextmanager
    def turn(self, mailbox: str) -> Iterator[_Turn]:
        with self._guard:
            lock, users = self._locks.get(mailbox) or (threading.Lock(), 0)
            self._locks[mailbox] = (lock, users + 1)
        lock.acquire()
        turn = _Turn(lock)
        try:
            yield turn
        finally:
            turn.end()
            with self._guard:
                lock, users = self._locks[mailbox]
                if users == 1:
                    del self._locks[mailbox]  # bounded by the pushes in flight, not by every mailbox seen
                else:
                    self._locks[mailbox] = (lock, users - 1)
