"""Purge of pending OAuth flows whose time ran out.

A flow row is deleted by the callback that redeems it; one whose user never came back stays until this purge,
run by a timer. Until then it is harmless (start and callback refuse an expired flow), but it holds a sealed PKCE
verifier and nonce, so it should not outlive its purpose, and an abandoned table would only grow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice

from shared.clock import Clock, utcnow
from shared.errors import ConcurrencyConflict
from shared.models import PendingFlow
from shared.storage.repositories import PendingFlows

log = logging.getLogger(__name__)

MAX_PER_RUN = 2000  # deletes per run, one request each (every flow is its own partition): a few seconds of work
PAGE_SIZE = 200


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    skipped: int  # changed or already gone since the query read them
    more: bool  # the bound was reached: the next run goes on


class FlowPurge:
    def __init__(self, flows: PendingFlows, clock: Clock = utcnow, *, max_per_run: int = MAX_PER_RUN,
                 page_size: int = PAGE_SIZE) -> None:
        self._flows = flows
        self._clock = clock
        self._max = max_per_run
        self._page_size = min(page_size, max_per_run)

    def purge(self) -> PurgeResult:
        """Delete up to `max_per_run` expired flows, reading them a page at a time by their expiry."""
        now = self._clock()
        expired = self._flows.expired(now, page_size=self._page_size)
        deleted = skipped = 0
        for row in islice(expired, self._max):
            if self.remove(row):
                deleted += 1
            else:
                skipped += 1
        more = deleted + skipped == self._max
        if deleted or skipped or more:
            log.info("pending flow purge: %d deleted, %d skipped%s", deleted, skipped,
                     "; more remain for the next run" if more else "")
        return PurgeResult(deleted=deleted, skipped=skipped, more=more)

    def remove(self, row: PendingFlow) -> bool:
        """Delete the row as it was read (under its ETag), so a row that changed since is left alone."""
        try:
            self._flows.delete(row.partition_key(), row.row_key(), etag=row.etag)
        except ConcurrencyConflict:
            return False
        return True
