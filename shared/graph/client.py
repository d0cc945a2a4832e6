"""Microsoft Graph over `requests`: one session per process, tokens from the connection's cache, and the retry
rules Graph asks for.

- 429/503/504: wait `Retry-After` when given, else back off exponentially with jitter; throttled calls still
  count against the budget, so retries are bounded. A `Retry-After` longer than MAX_WAIT_SECONDS is not slept
  in-process, and never cut short either: the GraphError carries it (`retry_after`) so the caller hands its work
  back (a queue message with that visibility timeout, a retry entry due then).
- 401: refresh the token once (it may have been revoked or expired early), then give up.
- Errors come back as `GraphError` with Graph's own error code, never as `requests` exceptions.
- Every request asks for immutable event IDs (`Prefer: IdType="ImmutableId"`): the sync IDs the product stores
  must survive a user moving an event to another calendar, which changes its default ID. The header "only
  applies to the request it is included with" (https://learn.microsoft.com/graph/outlook-immutable-id), so it
  goes on every request, next to the caller's own preferences, and on every `$batch` item (`batch.py`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from shared.errors import DependencyUnavailable, DomainError

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 503, 504}
MAX_ATTEMPTS = 5
MAX_WAIT_SECONDS = 30.0  # the longest wait slept in-process; longer ones are handed back to the caller

TokenSource = Callable[[bool], str]  # force_refresh -> access token

IMMUTABLE_IDS = 'IdType="ImmutableId"'


def with_immutable_ids(headers: dict[str, str] | None) -> dict[str, str]:
    """`headers` with the immutable-ID preference added to its `Prefer` (preferences are comma-separated)."""
    out = dict(headers or {})
    name = next((k for k in out if k.lower() == "prefer"), "Prefer")
    current = out.get(name, "")
    if "idtype" not in current.lower():
        out[name] = f"{current}, {IMMUTABLE_IDS}" if current else IMMUTABLE_IDS
    return out


class GraphError(DomainError):
    """Graph refused a request; `graph_code` is Graph's error code (ErrorAccessDenied, ErrorItemNotFound, ...)."""

    code = "graph_error"
    status = 502

    def __init__(self, http_status: int, graph_code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"Microsoft Graph answered {http_status} {graph_code}: {message}", microsoft_code=graph_code)
        self.http_status = http_status
        self.graph_code = graph_code
        self.retry_after = retry_after  # seconds Graph asked to wait before the next request (429/503)


@dataclass(frozen=True)
class Mailbox:
    """Whose calendars a request addresses: the signed-in account (`/me`) or another mailbox by address."""

    address: str | None = None

    @property
    def path(self) -> str:
        return "/me" if not self.address else f"/users/{quote(self.address, safe='@')}"


class GraphClient:
    def __init__(self, base_url: str, session: requests.Session, *, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._base = base_url.rstrip("/")
        self._session = session
        self._timeout = timeout
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        """The Graph version root (e.g. https://graph.microsoft.com/v1.0), for callers that build their own
        requests such as `$batch`."""
        return self._base

    @property
    def session(self) -> requests.Session:
        """The shared session, so other callers reuse its connection pool and TLS settings."""
        return self._session

    @property
    def timeout(self) -> float:
        return self._timeout

    def request(
        self, token: TokenSource, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request with the retry rules; returns the parsed JSON body (None for 204)."""
        url = path if path.startswith("https://") or path.startswith("http://") else f"{self._base}{path}"
        refreshed = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            all_headers = {"Authorization": f"Bearer {token(refreshed)}", "Accept": "application/json",
                           **with_immutable_ids(headers)}
            try:
                response = self._session.request(method, url, json=json, params=params, headers=all_headers,
                                                 timeout=self._timeout)
            except requests.RequestException as exc:
                if attempt == MAX_ATTEMPTS:
                    raise DependencyUnavailable("Microsoft Graph is unreachable") from None
                log.info("graph %s transport error (%s), retrying", method, type(exc).__name__)
                self._sleep(backoff(attempt))
                continue
            if response.status_code == 401 and not refreshed:
                refreshed = True
                continue
            if response.status_code in RETRY_STATUSES and attempt < MAX_ATTEMPTS:
                wait = retry_after(response.headers.get("Retry-After"), attempt)
                if wait <= MAX_WAIT_SECONDS:
                    self._sleep(wait)
                    continue
            if response.status_code >= 400:
                raise error_from(response)
            if response.status_code == 204 or not response.content:
                return None
            return response.json()
        raise DependencyUnavailable("Microsoft Graph kept throttling or failing")  # pragma: no cover - loop exits

    def list_calendars(self, token: TokenSource, mailbox: Mailbox) -> list[dict[str, Any]]:
        calendars: list[dict[str, Any]] = []
        page: Any = self.request(token, "GET", f"{mailbox.path}/calendars",
                                 params={"$select": "id,name,canEdit,isDefaultCalendar,owner", "$top": "100"})
        while True:
            calendars.extend(page.get("value", []))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return calendars
            page = self.request(token, "GET", next_link)

    def get_calendar(self, token: TokenSource, mailbox: Mailbox, calendar_id: str) -> dict[str, Any]:
        return self.request(token, "GET", f"{mailbox.path}/calendars/{quote(calendar_id, safe='')}",
                            params={"$select": "id,name,canEdit,isDefaultCalendar,owner"})


def retry_after(header: str | None, attempt: int) -> float:
    """Graph's `Retry-After` (seconds) in full when present, else exponential backoff with jitter."""
    seconds = header_seconds(header)
    return backoff(attempt) if seconds is None else seconds


def header_seconds(header: str | None) -> float | None:
    """A `Retry-After` of delta-seconds; None when absent or unreadable (Graph sends seconds, not dates)."""
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            return None
    return None


def backoff(attempt: int) -> float:
    base = min(0.5 * 2 ** (attempt - 1), MAX_WAIT_SECONDS)
    return base / 2 + random.uniform(0, base / 2)  # noqa: S311  # nosec B311 - backoff jitter, not security


def error_from(response: requests.Response) -> GraphError:
    try:
        error = response.json().get("error", {})
        code, message = str(error.get("code") or "unknown"), str(error.get("message") or "")
    except ValueError:
        code, message = "unknown", response.reason or ""
    wait = header_seconds(response.headers.get("Retry-After")) if response.status_code in RETRY_STATUSES else None
    return GraphError(response.status_code, code, message[:300], wait)
