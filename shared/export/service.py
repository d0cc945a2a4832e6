"""Export: the items API, bulk export jobs run from a Storage queue, and the retry drain.

Items are stored before anything is sent, and each occurrence's record before its event is created, so a
crash, a throttled Graph or a dead connection loses nothing: what did not reach Outlook is in the retry table
(or, for a job, in a chunk whose queue message comes back) and goes out later.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from shared import validation
from shared.alerts import REPEATED_FAILURES, AlertService
from shared.clock import Clock, iso, utcnow
from shared.connections import ConnectionAccess
from shared.errors import DomainError, NotFound, ValidationFailed
from shared.export.engine import RETRY_DELAYS, Desired, Outcome, SyncEngine, Target
from shared.export.items import parse_item
from shared.integrations import IntegrationService
from shared.models import (
    CONNECTED,
    FAILED,
    PENDING,
    Connection,
    ExportChunk,
    ExportJob,
    Item,
    RetryEntry,
    connection_partition,
)
from shared.storage.queues import QueueSender
from shared.storage.repositories import Repositories

log = logging.getLogger(__name__)

EXPORT_QUEUE = "export-work"
EXPORT_MODES = ("not_exported", "all")
CHUNK_OCCURRENCES = 200
MAX_JOB_OCCURRENCES = 20_000
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # Azure Storage queues hide a message for at most 7 days


class JobNotFound(NotFound):
    code = "export_job_not_found"


class ExportService:
    def __init__(self, repos: Repositories, access: ConnectionAccess, integrations: IntegrationService,
                 engine: SyncEngine, queues: QueueSender, alerts: AlertService, clock: Clock = utcnow) -> None:
        self._repos = repos
        self._access = access
        self._integrations = integrations
        self._engine = engine
        self._queues = queues
        self._alerts = alerts
        self._clock = clock

    def graph_stats(self) -> dict[str, int]:
        return self._engine.graph_stats()

    # --- one item ------------------------------------------------------------------------------------------------

    def put_item(self, system: str, kind: str, subject_id: str, item_id: str,
                 body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        connection = self._access.require(system, kind, subject_id)
        item = parse_item(system, kind, subject_id, item_id, body)
        item.updated_at = self._clock()
        self._repos.items.upsert(item)  # stored first: whatever happens next, the item is not lost
        outcomes = self._push(connection, [item], mode="upsert")
        if outcomes is None:
            return self._item_json(item, waiting=True), 202
        pending = any(o.state != "synced" and o.state != "unchanged" and o.state != "deleted" for o in outcomes)
        return self._item_json(item), 202 if pending else 200

    def get_item(self, system: str, kind: str, subject_id: str, item_id: str) -> dict[str, Any]:
        self._access.require(system, kind, subject_id)
        validation.identifier(item_id, "item")
        item = self._repos.items.get(connection_partition(system, kind, subject_id), item_id)
        if item is None:
            raise NotFound(f"item {item_id} not found")
        return self._item_json(item)

    def cancel_item(self, system: str, kind: str, subject_id: str, item_id: str) -> dict[str, Any]:
        """Delete the item's events (an event already gone counts as done), then forget the item."""
        connection = self._access.require(system, kind, subject_id)
        validation.identifier(item_id, "item")
        partition = connection_partition(system, kind, subject_id)
        records = self._repos.sync_records.of_item(partition, item_id)
        item = self._repos.items.get(partition, item_id)
        if item is None and not records:
            raise NotFound(f"item {item_id} not found")
        if item is not None:  # with no occurrences left, every remaining event is deleted
            item.occurrences = []
            self._repos.items.upsert(item)
        outcomes = self._with_target(connection, lambda t: self._engine.remove(t, records)) if records else []
        if outcomes is None:
            return {"item": item_id, "state": "pending", "reason": "the connection cannot sync now; retried later"}
        failed = [o.to_json() for o in outcomes if o.state != "deleted"]
        if not failed:
            self._repos.items.delete(partition, item_id)
        return {"item": item_id, "state": "cancelled" if not failed else "pending",
                "deleted_events": sum(1 for o in outcomes if o.state == "deleted"), "failed": failed}

    def _item_json(self, item: Item, *, waiting: bool = False) -> dict[str, Any]:
        records = {r.occurrence_key: r for r in self._repos.sync_records.of_item(item.partition_key(), item.item_id)}
        occurrences = []
        for raw in item.occurrences:
            record = records.get(raw["key"])
            entry: dict[str, Any] = {"key": raw["key"], "start": raw["start"], "end": raw["end"],
                                     "time_zone": raw["time_zone"],
                                     "sync_id": record.event_id if record else None,
                                     "state": record.state if record else "pending"}
            if raw.get("all_day"):
                entry.update(all_day=True, start_date=raw["start"][:10], end_date=raw["end"][:10])
            if record and record.last_error_code and record.state != "synced":
                entry["error"] = {"microsoft_code": record.last_error_code, "message": record.last_error_message}
            occurrences.append(entry)
        data: dict[str, Any] = {"item": item.item_id, "occurrences": occurrences, "updated_at": iso(item.updated_at)}
        if waiting:
            data["reason"] = "the connection cannot sync now (reauthorization required or sync disabled); retried later"
        return data

    # --- writing through a connection ----------------------------------------------------------------------------

    def _push(self, connection: Connection, items: list[Item], *, mode: str, **kwargs: Any) -> list[Outcome] | None:
        wanted = [Desired(item, self._title_mode(connection, item)) for item in items]
        return self._with_target(connection, lambda t: self._engine.push(t, wanted, mode=mode, **kwargs))

    def _with_target(self, connection: Connection, work: Any) -> list[Outcome] | None:
        """Run engine work against the connection's mailbox; None when the connection cannot sync now (its
        occurrences stay pending and retried later, so nothing is lost)."""
        integration = self._integrations.require(connection.system)
        if not integration.enabled or connection.status != CONNECTED:
            self._park(connection)
            return None

        def run(token: Any) -> list[Outcome]:
            target = Target(token, connection.mailbox.lower(), _own_mailbox(connection), connection.sync_calendar_id)
            return work(target)

        try:
            outcomes = self._access.run(connection, run, integration=integration)
        except DomainError as exc:
            if exc.status >= 500 or exc.code in ("reauthorization_required", "credentials_invalid",
                                                 "integration_disabled", "mailbox_not_in_scope"):
                self._park(connection)
                return None
            raise
        # An app-mode room refused per request (out of its Exchange scope): marked like any refusal, and parked so
        # its items are pushed again once access returns.
        if self._access.note_refusals(connection, (o.error_code for o in outcomes if o.state == FAILED)):
            self._park(connection)
        self._alert_exhausted(connection, outcomes)
        return outcomes

    def _park(self, connection: Connection) -> None:
        """The connection cannot sync now: one marker entry makes the retry drain push the connection's stored
        items (the truth of what Outlook should show) once it can."""
        entry = RetryEntry(system=connection.system, kind=connection.kind, subject_id=connection.subject_id,
                           item_id="*", occurrence_key="*", next_attempt_at=self._clock() + RETRY_DELAYS[0])
        self._repos.retries.upsert(entry)

    def _alert_exhausted(self, connection: Connection, outcomes: list[Outcome]) -> None:
        exhausted = [o for o in outcomes if o.exhausted]
        if exhausted:
            first = exhausted[0]
            self._alerts.raise_alert(
                connection.system, REPEATED_FAILURES, connection.row_key(),
                f"{len(exhausted)} occurrence(s) could not be written to Outlook after repeated attempts "
                f"(e.g. item {first.item_id}, {first.occurrence_key}: {first.error_message})", first.error_code)

    def _title_mode(self, connection: Connection, item: Item) -> str:
        if connection.kind != "space":
            return "patron_name"
        location = item.location or connection.location
        if not location:
            return "patron_name"
        return self._integrations.location(connection.system, location).title_mode

    # --- bulk export jobs ----------------------------------------------------------------------------------------

    def start_export(self, system: str, kind: str, subject_id: str, body: dict[str, Any]) -> dict[str, Any]:
        connection = self._access.require(system, kind, subject_id)
        self._integrations.require_enabled(system)
        mode = validation.one_of(validation.field(body, "mode", str), EXPORT_MODES, "mode")
        raw_items = validation.field(body, "items", list)
        if not raw_items:
            raise ValidationFailed("items", "is empty: send the future items to export")
        items: list[Item] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_items):
            prefix = f"items[{index}]."
            if not isinstance(raw, dict) or not isinstance(raw.get("item"), str):
                raise ValidationFailed(f"{prefix}item", "each entry needs its item ID in `item`")
            if raw["item"] in seen:
                raise ValidationFailed(f"{prefix}item", f"item {raw['item']} appears twice")
            seen.add(raw["item"])
            items.append(parse_item(system, kind, subject_id, raw["item"], raw, prefix=prefix))
        total = sum(len(i.occurrences) for i in items)
        if total > MAX_JOB_OCCURRENCES:
            raise ValidationFailed("items", f"at most {MAX_JOB_OCCURRENCES} occurrences per job; split it")

        now = self._clock()
        partition = connection_partition(system, kind, subject_id)
        stored = {i.item_id: i for i in self._repos.items.of_ids(partition, [i.item_id for i in items])}
        for item in items:
            _merge(item, stored.get(item.item_id), now)
        job = ExportJob(system=system, kind=kind, subject_id=subject_id, job_id=uuid.uuid4().hex, mode=mode,
                        total=total, chunks=0, created_at=now)
        chunks = _chunk(items, job.job_id)
        job.chunks = len(chunks)
        # The job's work is stored before the job: a failure on the way leaves no job row (nothing listed as
        # queued that never runs), only upserted rows the caller's retry writes again.
        self._repos.items.upsert_many(items)
        self._repos.export_chunks.upsert_many(chunks)
        self._repos.export_jobs.insert(job)
        try:
            for chunk in chunks:
                self._queues.send(EXPORT_QUEUE, {"type": "chunk", "system": system, "kind": kind, "id": subject_id,
                                                 "job": job.job_id, "chunk": chunk.index,
                                                 "run": _carry(job, chunk)})
        except DomainError:
            self._withdraw(job, chunks)
            raise
        log.info("export job %s for %s/%s: %d items, %d occurrences, %d chunks", job.job_id, system,
                 connection.row_key(), len(items), total, len(chunks))
        return self._job_json(job, chunks)

    def _withdraw(self, job: ExportJob, chunks: list[ExportChunk]) -> None:
        """Queueing failed midway: take the job back, so no job waits forever for messages never sent. A chunk
        whose message went out finds no job and is dropped; its items are stored, and the retried request makes
        a new job that writes them (creates are idempotent)."""
        try:
            self._repos.export_jobs.delete(job.partition_key(), job.row_key())
            self._repos.export_chunks.delete_many((c.partition_key(), c.row_key()) for c in chunks)
        except DomainError as exc:
            log.error("export job %s could not be queued nor withdrawn: %s", job.job_id, exc.code)

    def job_status(self, system: str, kind: str, subject_id: str, job_id: str) -> dict[str, Any]:
        self._access.require(system, kind, subject_id)
        validation.identifier(job_id, "job")
        job = self._repos.export_jobs.get(connection_partition(system, kind, subject_id), job_id)
        if job is None:
            raise JobNotFound(f"export job {job_id} not found")
        return self._job_json(job, list(self._repos.export_chunks.partition(job_id)))

    def list_jobs(self, system: str, kind: str, subject_id: str) -> dict[str, Any]:
        self._access.require(system, kind, subject_id)
        jobs = sorted(self._repos.export_jobs.partition(connection_partition(system, kind, subject_id)),
                      key=lambda j: j.created_at, reverse=True)[:50]
        return {"jobs": [{"job": j.job_id, "mode": j.mode, "total": j.total, "state": j.state,
                          "created_at": iso(j.created_at), "completed_at": iso(j.completed_at)} for j in jobs]}

    def _job_json(self, job: ExportJob, chunks: list[ExportChunk]) -> dict[str, Any]:
        done = sum(c.done for c in chunks)
        failed = sum(c.failed for c in chunks)
        retrying = sum(c.retrying for c in chunks)
        finished = all(c.state == "done" for c in chunks)
        state = ("completed_with_failures" if failed else "completed") if finished else (
            "running" if any(c.state == "done" for c in chunks) else "queued")
        failures = [f for c in chunks for f in c.failures][:100]
        return {"job": job.job_id, "mode": job.mode, "state": state, "total": job.total, "done": done,
                "failed": failed, "retrying": retrying, "pending": job.total - done - failed - retrying,
                "failures": failures, "created_at": iso(job.created_at)}

    # --- the queue worker ----------------------------------------------------------------------------------------

    def process(self, message: dict[str, Any]) -> str:
        kind = message.get("type")
        if kind == "chunk":
            return self._process_chunk(message)
        if kind == "retry":
            return self._process_retry(message)
        raise ValidationFailed("type", f"unknown export message type {kind!r}")

    def _process_chunk(self, message: dict[str, Any]) -> str:
        system, kind, subject_id = str(message["system"]), str(message["kind"]), str(message["id"])
        partition = connection_partition(system, kind, subject_id)
        carried = _carried(message)
        if carried is not None:  # the job's and the chunk's rows as start_export wrote them: not read again
            job, chunk = carried
        else:  # a message from before rows were carried
            job = self._repos.export_jobs.get(partition, str(message["job"]))
            chunk = self._repos.export_chunks.get(str(message["job"]), f"{int(message['chunk']):06d}")
            if job is None or chunk is None:
                return "gone"
            if chunk.state == "done":
                return "already_done"  # a redelivered message
        connection = self._repos.connections.find(system, kind, subject_id)
        if connection is None:
            chunk.failed, chunk.state = chunk.occurrences, "done"
            chunk.failures = [{"item": "*", "occurrence": "*", "microsoft_code": "", "message": "connection removed"}]
            self._repos.export_chunks.replace(chunk)
            return "connection_removed"
        items = self._repos.items.of_ids(partition, chunk.item_ids)
        wanted = {(i.item_id, o["key"]) for i in items for o in i.occurrences}
        mode = "missing" if job.mode == "not_exported" else "all"
        outcomes = self._push(connection, items, mode=mode, asserted_since=job.created_at, only=wanted,
                              hand_back=True)
        if outcomes is None:
            raise DomainError("the connection cannot sync now; the chunk will be retried")  # message comes back
        later = [o.not_before for o in outcomes if o.not_before is not None]
        if later:
            # Throttled for longer than an instance sleeps, or claimed by another instance: the chunk comes back
            # when that is over (a redelivery skips what this pass wrote), never earlier.
            delay = min(max(math.ceil((max(later) - self._clock()).total_seconds()), 1), MAX_VISIBILITY_SECONDS)
            self._queues.send(EXPORT_QUEUE, message, delay_seconds=delay)
            return f"handed back for {delay} s"
        failed = [o for o in outcomes if o.state == FAILED]
        chunk.done = sum(1 for o in outcomes if o.state in ("synced", "unchanged"))
        chunk.failed = len(failed)
        chunk.retrying = sum(1 for o in outcomes if o.state == PENDING)  # handed to the retry table
        chunk.failures = [{"item": o.item_id, "occurrence": o.occurrence_key, "microsoft_code": o.error_code or "",
                           "message": o.error_message or ""} for o in failed][:50]
        chunk.state, chunk.updated_at = "done", self._clock()
        if not self._repos.export_chunks.replace(chunk):
            return "gone"  # the job was withdrawn (its items are stored: their export was due anyway)
        self._complete_if_done(job, chunk)
        return f"done {chunk.done} failed {chunk.failed} retrying {chunk.retrying}"

    def _complete_if_done(self, job: ExportJob, chunk: ExportChunk) -> None:
        """The last chunk to finish marks the job row, so listings need not read every job's chunks. A job of one
        chunk is done with it; otherwise the job's chunks are read (each finisher reads after writing its own, so
        the last one sees them all done). The job row is replaced where it still exists: two finishers write the
        same state."""
        chunks = [chunk] if job.chunks == 1 else list(self._repos.export_chunks.partition(job.job_id))
        if any(c.state != "done" for c in chunks):
            return
        job.state = self._job_json(job, chunks)["state"]
        job.completed_at = self._clock()
        self._repos.export_jobs.replace(job)

    # --- the retry drain -----------------------------------------------------------------------------------------

    def drain_retries(self) -> int:
        """Timer: one queue message per connection with occurrences due for another attempt."""
        due: dict[tuple[str, str, str], int] = defaultdict(int)
        for entry in self._repos.retries.due(self._clock()):
            due[(entry.system, entry.kind, entry.subject_id)] += 1
        for system, kind, subject_id in due:
            self._queues.send(EXPORT_QUEUE, {"type": "retry", "system": system, "kind": kind, "id": subject_id})
        return len(due)

    def _process_retry(self, message: dict[str, Any]) -> str:
        system, kind, subject_id = str(message["system"]), str(message["kind"]), str(message["id"])
        connection = self._repos.connections.find(system, kind, subject_id)
        partition = connection_partition(system, kind, subject_id)
        entries = [e for e in self._repos.retries.partition("retry") if e.system == system
                   and e.kind == kind and e.subject_id == subject_id and e.next_attempt_at <= self._clock()]
        if connection is None:
            self._repos.retries.delete_many((e.partition_key(), e.row_key()) for e in entries)
            return "connection_removed"
        parked = [e for e in entries if e.item_id == "*"]
        specific = {(e.item_id, e.occurrence_key) for e in entries if e.item_id != "*"}
        if parked:  # everything of this connection that is not yet in Outlook as the item says
            items = list(self._repos.items.partition(partition))
            only = None
        else:
            items = [i for i in (self._repos.items.get(partition, item_id) for item_id, _ in specific) if i]
            only = specific
        outcomes = self._push(connection, items, mode="upsert", only=only)
        if outcomes is None:
            return "deferred"
        # Retry entries of occurrences no longer in any item (and the parked marker) are done with.
        handled = {(o.item_id, o.occurrence_key) for o in outcomes if o.state != "unchanged"}
        stale = [e for e in entries if e.item_id == "*" or (e.item_id, e.occurrence_key) not in handled]
        self._repos.retries.delete_many((e.partition_key(), e.row_key()) for e in stale)
        return f"retried {len(outcomes)}"

    # --- removing a connection's events --------------------------------------------------------------------------

    def remove_events(self, connection: Connection) -> int:
        """Delete every event this product created for the connection (DELETE connection ?remove_events=true)."""
        partition = connection_partition(connection.system, connection.kind, connection.subject_id)
        records = list(self._repos.sync_records.partition(partition))
        if not records:
            return 0
        outcomes = self._with_target(connection, lambda t: self._engine.remove(t, records))
        if outcomes is None:
            raise DomainError("the events cannot be removed while the connection cannot sync; authorize it again "
                              "or remove the authorization without removing events")
        self._repos.items.delete_many((i.partition_key(), i.row_key()) for i in self._repos.items.partition(partition))
        return sum(1 for o in outcomes if o.state == "deleted")


def _carry(job: ExportJob, chunk: ExportChunk) -> dict[str, Any]:
    """What a chunk's worker needs of the job's and the chunk's rows, in its queue message (under 14 KB: at most
    200 item IDs of at most 64 characters), so that it reads neither."""
    return {"mode": job.mode, "total": job.total, "chunks": job.chunks, "created_at": job.created_at.isoformat(),
            "items": chunk.item_ids, "occurrences": chunk.occurrences}


def _carried(message: dict[str, Any]) -> tuple[ExportJob, ExportChunk] | None:
    run = message.get("run")
    if not isinstance(run, dict):
        return None
    try:
        system, kind, subject_id, job_id = (str(message[k]) for k in ("system", "kind", "id", "job"))
        job = ExportJob(system=system, kind=kind, subject_id=subject_id, job_id=job_id, mode=str(run["mode"]),
                        total=int(run["total"]), chunks=int(run["chunks"]),
                        created_at=datetime.fromisoformat(str(run["created_at"])))
        items = run["items"]
        if not isinstance(items, list) or job.mode not in EXPORT_MODES:
            raise ValueError("items")
        chunk = ExportChunk(job_id=job_id, index=int(message["chunk"]), item_ids=[str(i) for i in items],
                            occurrences=int(run["occurrences"]))
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed("run", "the export chunk message is malformed") from None
    return job, chunk


def _merge(item: Item, stored: Item | None, now: datetime) -> None:
    """A bulk export carries future occurrences only: keep the stored item's others."""
    if stored is not None:
        sent = {o["key"] for o in item.occurrences}
        item.occurrences = [o for o in stored.occurrences if o["key"] not in sent] + item.occurrences
    item.updated_at = now


def _own_mailbox(connection: Connection) -> bool:
    return not connection.sync_resource or connection.sync_resource == connection.account_username.lower()


def _chunk(items: list[Item], job_id: str) -> list[ExportChunk]:
    chunks: list[ExportChunk] = []
    current: list[Item] = []
    count = 0
    for item in items:
        if current and count + len(item.occurrences) > CHUNK_OCCURRENCES:
            chunks.append(ExportChunk(job_id=job_id, index=len(chunks), item_ids=[i.item_id for i in current],
                                      occurrences=count))
            current, count = [], 0
        current.append(item)
        count += len(item.occurrences)
    if current:
        chunks.append(ExportChunk(job_id=job_id, index=len(chunks), item_ids=[i.item_id for i in current],
                                  occurrences=count))
    return chunks

