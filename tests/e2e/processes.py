"""The function app served alone in a subprocess (`python -m devstack.serve_app`), for tests that kill it, restart
it, or run two of it side by side against one storage account, as two instances in Azure would."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.azurite import Azurite
from devstack.ports import free_port, wait_listening
from devstack.stack import REPO
from tests.conftest import FUNCTION_KEY, MASTER_KEY, ApiClient
from tests.helpers import connect
from tests.integration.test_pull import booking, outlook_event, slot


@contextmanager
def isolated_storage() -> Iterator[Azurite]:
    """Storage of its own, so the session's in-process app host does not work on the test's queues."""
    azurite = Azurite(free_port(), free_port()).start()
    try:
        yield azurite
    finally:
        azurite.stop()


def app_env(app_env_base: dict[str, str], storage: Azurite, url: str, **extra: str) -> dict[str, str]:
    """The environment of an app process: the session app's settings on `storage`, with local keys."""
    return {**os.environ, **app_env_base, "AzureWebJobsStorage": storage.connection_string, "PUBLIC_BASE_URL": url,
            "LOCAL_FUNCTION_KEY": FUNCTION_KEY, "LOCAL_MASTER_KEY": MASTER_KEY, **extra}


class AppProcess:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, key: str = FUNCTION_KEY) -> ApiClient:
        return ApiClient(self.url, key)

    def start(self) -> float:
        """Start the process and wait until it serves; returns how long that took (seconds)."""
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "devstack.serve_app", "--port", str(self.port)],
                                         cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_listening(self.port, timeout=60)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, queue leases and table leases are left as they are."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def invoke(self, function: str, payload: Any = "") -> None:
        """`POST /admin/functions/{name}` with the master key: a timer, or a queue function with `payload` as its
        message (run on the host's admin pool, not through the queue)."""
        body = {"input": payload if isinstance(payload, str) else json.dumps(payload)}
        response = self.api(MASTER_KEY).post(f"/admin/functions/{function}", json=body)
        assert response.status_code == 202, response.text

    def log_lines(self, contains: str) -> list[str]:
        if not self.log.exists():
            return []
        return [line for line in self.log.read_text(errors="replace").splitlines() if contains in line]

    def errors(self) -> str:
        """The app's warnings and errors, for failure messages."""
        return errors(self.log)


def errors(log: Path) -> str:
    if not log.exists():
        return ""
    return "\n".join(line for line in log.read_text(errors="replace").splitlines()
                     if "WARNING" in line or "ERROR" in line)[-4000:]


# --- a two-way room and what its feed should say -------------------------------------------------------------


class OutlookRoom:
    """A space connection with two-way sync on a room mailbox of the simulator, the changes a test makes to the
    room in Outlook, and the feed entries each should produce (exactly once): `expected` counts them by
    (type, event ID). The product's own events (items exported through the API) must never appear as external
    events; a change made to one in Outlook appears once as `own_event_changed`."""

    EXTERNAL_SLOT_HOURS = 2  # external bookings every 2 hours from SOON, own bookings far after them
    OWN_FROM_HOURS = 2000

    def __init__(self, api: ApiClient, simulator: Any, directory: Any, system: str, space: str = "r1") -> None:
        self.api, self.simulator, self.d, self.system, self.space = api, simulator, directory, system, space
        self.externals: dict[str, str] = {}  # event ID -> subject, as in Outlook now
        self.own: dict[str, str] = {}  # event ID -> item ID
        self.expected: Counter[tuple[str, str]] = Counter()
        self._slots = 0
        self._moves = 0
        self._settled: set[str] = set()  # external events published already and not touched since

    def begin_round(self) -> None:
        """Changes up to here will be published before the next round's: each may be touched again once."""
        self._settled = set(self.externals)

    @property
    def base(self) -> str:
        return f"/api/systems/{self.system}/connections/space/{self.space}"

    def set_up(self) -> None:
        connect(self.api, self.simulator, self.system, "space", self.space, self.d.staff)
        saved = self.api.put(f"/api/systems/{self.system}/locations/main",
                             json={"title_mode": "patron_name", "populate_creator": True})
        assert saved.status_code in (200, 201), saved.text
        patched = self.api.patch(self.base, json={"sync_resource": self.d.room, "two_way": True, "location": "main"})
        assert patched.status_code == 200, patched.text

    # --- changes made in Outlook -----------------------------------------------------------------------------

    def book(self, count: int) -> None:
        for _ in range(count):
            subject = f"Outlook booking {self._slots}"
            made = self.simulator.sim.graph.create_event(
                self.d.room, outlook_event(subject, self._slots * self.EXTERNAL_SLOT_HOURS),
                as_user=self.d.other_staff)
            self._slots += 1
            self.externals[made["id"]] = subject
            self.expected["created", made["id"]] += 1

    def _pick(self, count: int, rng: random.Random) -> list[str]:
        """Events published in an earlier round and not touched in this one (two changes of one event between
        two pulls are one change to publish)."""
        picked = rng.sample(sorted(self._settled), min(count, len(self._settled)))
        self._settled -= set(picked)
        return picked

    def retitle(self, count: int, rng: random.Random) -> None:
        for event_id in self._pick(count, rng):
            subject = self.externals[event_id] + " (moved to B)"
            self.simulator.sim.graph.update_event(event_id, {"subject": subject})
            self.externals[event_id] = subject
            self.expected["updated", event_id] += 1

    def cancel(self, count: int, rng: random.Random) -> None:
        for event_id in self._pick(count, rng):
            self.simulator.sim.graph.delete_event(event_id)
            del self.externals[event_id]
            self.expected["removed", event_id] += 1

    def move_own(self, rng: random.Random) -> None:
        event_id = rng.choice(sorted(self.own))
        self._moves += 1
        start, end = slot(self.OWN_FROM_HOURS + 500 + self._moves)
        self.simulator.sim.graph.update_event(event_id, {
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
        self.expected["own_event_changed", event_id] += 1

    # --- the host's side -------------------------------------------------------------------------------------

    def export(self, count: int) -> None:
        """Bookings made in the host app, exported through the item API (our own events in the room)."""
        for _ in range(count):
            index = len(self.own)
            response = self.api.put(f"{self.base}/items/own-{index}", json=booking(self.OWN_FROM_HOURS + index * 3))
            assert response.status_code == 200, response.text
            self.own[response.json()["occurrences"][0]["sync_id"]] = f"own-{index}"

    def feed(self, cursor: str = "0") -> list[dict[str, Any]]:
        """Every feed entry after `cursor`, paging to the end."""
        entries: list[dict[str, Any]] = []
        while True:
            page = self.api.get(f"{self.base}/external-events?cursor={cursor}&limit=500")
            assert page.status_code == 200, page.text
            body = page.json()
            entries.extend(body["changes"])
            cursor = body["next_cursor"]
            if not body["more"]:
                return entries

    def check_feed(self) -> list[dict[str, Any]]:
        """The whole feed says exactly what was changed, each change once, with no gap in its sequence, and
        nothing about our own events except their changes made in Outlook."""
        entries = self.feed()
        seqs = [e["seq"] for e in entries]
        assert seqs == list(range(1, len(seqs) + 1)), f"feed sequence has gaps or repeats: {seqs}"
        published = Counter((e["type"], e["event_id"]) for e in entries)
        echoed = [e for e in entries if e["event_id"] in self.own and not e["type"].startswith("own_event")]
        assert not echoed, f"own events published as external events: {echoed}"
        duplicates = {k: n for k, n in published.items() if n > max(1, self.expected[k])}
        assert not duplicates, f"published more than once: {duplicates}"
        missing = self.expected - published
        extra = published - self.expected
        assert not missing and not extra, f"missing from the feed: {dict(missing)}; unexpected: {dict(extra)}"
        return entries
