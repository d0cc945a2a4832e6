"""Graph work in JSON batches, shaped by Outlook's limits rather than by our loop.

- A `$batch` carries at most 20 requests, and Outlook runs at most 4 of them at once per mailbox; more than 4
  concurrent requests per app and mailbox are refused with 429. So one batch in flight per mailbox is exactly the
  mailbox's allowance: a process-wide gate per mailbox keeps two threads (or two executors) from overlapping.
- Each item is throttled on its own and can come back 429/503/504 inside a 200 envelope with its own
  `Retry-After`. Only those items are resent, not before that time. A 503/504 concerns its item: meanwhile the
  next batch is filled with items not yet sent. A 429 concerns the mailbox: Graph "limits any further requests
  from that client app for some time" (https://learn.microsoft.com/graph/throttling), so nothing more goes to that
  mailbox from this executor until its `Retry-After` is up.
- A `Retry-After` over `max_wait` is not slept in-process and never cut short: the run's unfinished items come
  back at once as 429 with `retry_after` (seconds left) and `attempts` 0 for those never sent, and the caller
  hands the work back (a queue message with that visibility timeout, a retry entry due then).
- An item may carry a `send_by` (the executor's clock): it is never sent, first time or again, after that moment
  (the caller's claim on it ends), and comes back as status 0 "SendWindowClosed" instead.
- A failed envelope (429/503/504, a dropped connection, a timeout) is resent whole. Creates must carry a
  `transactionId` so that resending one whose answer was lost returns the event it made instead of a duplicate.
- Attempts are bounded per item: throttled calls still count against the mailbox's budget, so hammering digs
  deeper. Deletes are idempotent: 404/410 on DELETE means the work is already done.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.graph.client import RETRY_STATUSES, GraphClient, TokenSource, retry_after, with_immutable_ids

log = logging.getLogger(__name__)

MAX_BATCH = 20  # Graph's limit on requests per $batch

_gates_lock = threading.Lock()
_mailbox_gates: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def _mailbox_gate(mailbox: str, size: int) -> threading.BoundedSemaphore:
    """Process-wide, so every executor in the process shares one allowance per mailbox."""
    key = (mailbox.strip().lower(), size)
    with _gates_lock:
        gate = _mailbox_gates.get(key)
        if gate is None:
            gate = _mailbox_gates[key] = threading.BoundedSemaphore(size)
        return gate


@dataclass(frozen=True)
class GraphRequest:
    id: str  # the caller's correlation id, unique within one run() call
    method: str
    url: str  # relative to the Graph version root, e.g. "/users/room@x.org/events"
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    send_by: float | None = None  # on the executor's clock (`BatchExecutor.now`): never sent after this


@dataclass(frozen=True)
class GraphResult:
    id: str
    status: int  # final status after retries; 0 = transport failure; DELETE 404/410 become 204 with gone=True
    body: Any  # parsed JSON body (None for 204)
    error_code: str | None  # Graph's error code when status >= 400; "transport_error" when status is 0
    attempts: int
    gone: bool = False
    retry_after: float | None = None  # throttled for longer than the executor sleeps: try again in this many s

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class BatchStats:
    """Totals across every run of one executor, for benchmarks and logs; thread-safe."""

    round_trips: int = 0  # $batch requests sent, answered or not
    batches: int = 0  # envelopes Graph answered with 200
    items_sent: int = 0  # item sends, first attempts and retries
    retried_items: int = 0  # item sends that were retries
    throttled_items: int = 0  # items answered 429 inside a 200 envelope
    envelope_retries: int = 0  # whole batches resent after 429/503/504 on the envelope or a transport error
    transport_errors: int = 0
    token_refreshes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


@dataclass
class _Slot:
    index: int
    request: GraphRequest
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class _Bar:
    """One run's view of its mailbox's throttling: nothing is sent before `until` (the executor's clock); when
    `handed_back` is set (wall time), the run stops and hands its unfinished items back."""

    until: float = 0.0
    applied: float = 0.0  # the latest executor-wide bar (wall time) this run has taken into account
    handed_back: float | None = None


class _Token:
    """One forced refresh per run: a second 401 means the grant is gone, not that the token was stale."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self._fresh: str | None = None

    def get(self) -> str:
        return self._fresh if self._fresh is not None else self._source(False)

    def refresh(self) -> bool:
        if self._fresh is not None:
            return False
        self._fresh = self._source(True)
        return True


class BatchExecutor:
    """Build one per process and share it: its global gate bounds batches in flight across all mailboxes."""

    def __init__(self, client: GraphClient, *, per_mailbox_batches: int = 1, global_limit: int = 16,
                 max_attempts: int = 6, max_wait: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if per_mailbox_batches < 1 or global_limit < 1 or max_attempts < 1:
            raise ValueError("per_mailbox_batches, global_limit and max_attempts must be at least 1")
        self._client = client
        self._per_mailbox = per_mailbox_batches
        self._global_limit = global_limit
        self._global = threading.BoundedSemaphore(global_limit)
        self._max_attempts = max_attempts
        self._max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._wall = wall  # the app's clock (epoch seconds): when a mailbox's Retry-After is up, across runs
        self._bars_lock = threading.Lock()
        self._bars: dict[str, float] = {}  # mailbox -> wall time before which it is throttled
        self.stats = BatchStats()

    def now(self) -> float:
        """The executor's clock, for `GraphRequest.send_by`."""
        return self._clock()

    def throttled_for(self, mailbox: str) -> float:
        """Seconds left before this executor sends to the mailbox again (0 when it is not throttled)."""
        with self._bars_lock:
            until = self._bars.get(mailbox.strip().lower(), 0.0)
        return max(until - self._wall(), 0.0)

    def run(self, token: TokenSource, mailbox: str, requests: Sequence[GraphRequest]) -> list[GraphResult]:
        """Do all of `requests` against one mailbox; answers one result per request, in their order. Exceptions
        from `token` (e.g. the connection needs reauthorization) propagate."""
        if len({r.id for r in requests}) != len(requests):
            raise ValueError("request ids must be unique within one run")
        results: list[GraphResult | None] = [None] * len(requests)
        pending = [_Slot(i, r) for i, r in enumerate(requests)]
        auth = _Token(token)
        bar = _Bar()
        while pending:
            self._take_bar(mailbox, bar)
            now = self._clock()
            if bar.handed_back is not None:
                left = max(bar.handed_back - self._wall(), 0.0)
                for slot in pending:
                    results[slot.index] = GraphResult(slot.request.id, 429, None, "ApplicationThrottled",
                                                      slot.attempts, retry_after=left)
                break
            for slot in pending:
                if slot.request.send_by is not None and max(slot.not_before, bar.until, now) > slot.request.send_by:
                    results[slot.index] = GraphResult(slot.request.id, 0, None, "SendWindowClosed", slot.attempts)
            pending = [s for s in pending if results[s.index] is None]
            ready = [s for s in pending if max(s.not_before, bar.until) <= now][:MAX_BATCH]
            if not ready:
                if pending:
                    self._sleep(max(min(max(s.not_before, bar.until) for s in pending) - now, 0.0))
                continue
            self._round_trip(auth, mailbox, ready, results, bar)
            pending = [s for s in pending if results[s.index] is None]
        return [r for r in results if r is not None]

    def _take_bar(self, mailbox: str, bar: _Bar) -> None:
        """Take in a Retry-After another run (or an earlier one) of this executor was given for the mailbox."""
        with self._bars_lock:
            until = self._bars.get(mailbox.strip().lower(), 0.0)
        if until <= bar.applied:
            return
        bar.applied = until
        left = until - self._wall()
        if left > self._max_wait:
            bar.handed_back = until
        elif left > 0:
            bar.until = max(bar.until, self._clock() + left)

    def _throttle(self, mailbox: str, bar: _Bar, seconds: float) -> None:
        """A 429 bars the whole mailbox for its Retry-After, for this run and the executor's others."""
        until = self._wall() + seconds
        with self._bars_lock:
            key = mailbox.strip().lower()
            now = self._wall()
            for stale in [k for k, v in self._bars.items() if v <= now]:
                del self._bars[stale]  # bounded by the mailboxes throttled now, not every one ever throttled
            self._bars[key] = max(self._bars.get(key, 0.0), until)
        if seconds > self._max_wait:
            bar.handed_back = max(bar.handed_back or 0.0, until)
        else:
            bar.until = max(bar.until, self._clock() + seconds)

    def run_many(self, work: Sequence[tuple[TokenSource, str, Sequence[GraphRequest]]]) -> list[list[GraphResult]]:
        """Several mailboxes at once; entries for the same mailbox still take turns at its gate."""
        if not work:
            return []
        workers = min(self._global_limit, len(work))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graph-batch") as pool:
            futures = [pool.submit(self.run, token, mailbox, reqs) for token, mailbox, reqs in work]
            return [f.result() for f in futures]

    # --- one $batch ---------------------------------------------------------------------------------------------

    def _round_trip(self, auth: _Token, mailbox: str, batch: list[_Slot], results: list[GraphResult | None],
                    bar: _Bar) -> None:
        retries = sum(1 for s in batch if s.attempts > 0)
        for slot in batch:
            slot.attempts += 1
        self.stats.add(items_sent=len(batch), retried_items=retries)
        response = self._post(auth.get(), mailbox, batch)
        due: dict[tuple[str | None, int], float] = {}  # wait key -> when (one draw of jitter)
        if response is None:
            self.stats.add(transport_errors=1, envelope_retries=1)
            for slot in batch:
                self._again(slot, results, 0, "transport_error", None, None, due)
            return
        again = self._again

        def retry(slot: _Slot, status: int, code: str | None, body: Any, header: str | None) -> None:
            if status == 429:
                self._throttle(mailbox, bar, retry_after(header, slot.attempts))
            again(slot, results, status, code, body, header, due)

        status = response.status_code
        answers = _answers(response) if status == 200 else None
        if answers is not None:
            self.stats.add(batches=1)
            self._settle(auth, batch, answers, results, due, retry)
            return
        log.debug("graph batch envelope answered %d for %d items", status, len(batch))
        if status == 401 and self._refresh(auth):
            return  # resend at once with the new token
        body = _json(response)
        code = _error_code(body)
        if status == 200:  # no readable envelope: treat as a bad gateway and resend
            status, code, body = 502, "InvalidBatchResponse", None
        if status in RETRY_STATUSES or status == 502:
            self.stats.add(envelope_retries=1)
            for slot in batch:
                retry(slot, status, code, body, response.headers.get("Retry-After"))
        else:
            for slot in batch:
                results[slot.index] = GraphResult(slot.request.id, status, body, code, slot.attempts)

    def _refresh(self, auth: _Token) -> bool:
        refreshed = auth.refresh()
        if refreshed:
            self.stats.add(token_refreshes=1)
        return refreshed

    def _post(self, access_token: str, mailbox: str, batch: list[_Slot]) -> requests.Response | None:
        # Encoded before taking the mailbox's gate: while it is held, the mailbox's allowance is only spent on
        # the wire, never on building the next request.
        payload = json.dumps({"requests": [self._item(s) for s in batch]}, separators=(",", ":")).encode()
        headers = with_immutable_ids({"Authorization": f"Bearer {access_token}", "Accept": "application/json",
                                      "Content-Type": "application/json"})
        with _mailbox_gate(mailbox, self._per_mailbox), self._global:
            self.stats.add(round_trips=1)
            try:
                return self._client.session.post(f"{self._client.base_url}/$batch", data=payload, headers=headers,
                                                 timeout=self._client.timeout)
            except requests.RequestException as exc:
                log.debug("graph batch of %d items: transport error %s", len(batch), type(exc).__name__)
                return None

    def _item(self, slot: _Slot) -> dict[str, Any]:
        req = slot.request
        url = req.url[len(self._client.base_url):] if req.url.startswith(self._client.base_url) else req.url
        item: dict[str, Any] = {"id": str(slot.index), "method": req.method.upper(), "url": url}
        headers = with_immutable_ids(req.headers)  # an item has only its own headers, not the envelope's
        if req.body is not None:
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"  # Graph refuses a batch item body without one
            item["body"] = req.body
        item["headers"] = headers
        return item

    def _settle(self, auth: _Token, batch: list[_Slot], answers: dict[str, Any],
                results: list[GraphResult | None], due: dict[tuple[str | None, int], float],
                retry: Callable[[_Slot, int, str | None, Any, str | None], None]) -> None:
        statuses: Counter[int] = Counter()
        refreshed_now = False
        for slot in batch:
            answer = answers.get(str(slot.index))
            if not isinstance(answer, dict):
                self._again(slot, results, 502, "MissingBatchResponse", None, None, due)
                continue
            status = int(answer.get("status") or 0)
            statuses[status] += 1
            body = answer.get("body")
            headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
            code = _error_code(body) if status >= 400 else None
            if status in RETRY_STATUSES:
                if status == 429:
                    self.stats.add(throttled_items=1)
                retry(slot, status, code, body, headers.get("retry-after"))
            elif status == 401 and (refreshed_now or self._refresh(auth)):
                refreshed_now = True  # resend at once with the new token; max_attempts still bounds it
                self._again(slot, results, status, code, body, "0", due)
            elif slot.request.method.upper() == "DELETE" and status in (404, 410):
                results[slot.index] = GraphResult(slot.request.id, 204, None, None, slot.attempts, gone=True)
            else:
                results[slot.index] = GraphResult(slot.request.id, status, None if status == 204 else body,
                                                  code, slot.attempts)
        log.debug("graph batch of %d items answered %s", len(batch), dict(statuses))

    def _again(self, slot: _Slot, results: list[GraphResult | None], status: int, code: str | None, body: Any,
               header: str | None, due: dict[tuple[str | None, int], float]) -> None:
        """Schedule a retry not before Retry-After (or a jittered backoff), or settle after the last attempt.
        Items of one round trip that wait alike share one not-before time (one draw of jitter), so they come
        back as one batch instead of scattering into many small ones. A wait over `max_wait` settles the item
        with `retry_after` instead: the caller hands it back, it is not slept here."""
        key = (header, slot.attempts)
        if key not in due:
            due[key] = self._clock() + retry_after(header, slot.attempts)
        wait = due[key] - self._clock()
        if wait > self._max_wait:
            results[slot.index] = GraphResult(slot.request.id, status, body, code, slot.attempts, retry_after=wait)
            return
        if slot.attempts >= self._max_attempts:
            results[slot.index] = GraphResult(slot.request.id, status, body, code, slot.attempts)
            return
        slot.not_before = max(slot.not_before, due[key])


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _answers(response: requests.Response) -> dict[str, Any] | None:
    """The envelope's item answers by id, or None when a 200 carried no readable envelope."""
    body = _json(response)
    if not isinstance(body, dict) or not isinstance(body.get("responses"), list):
        return None
    return {str(a.get("id")): a for a in body["responses"] if isinstance(a, dict)}


def _error_code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("code") or "unknown")
    return "unknown"
