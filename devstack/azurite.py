"""Start and stop Azurite's table and queue services (npm package `azurite`, installed by `npm ci`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess  # nosec B404 - starts Azurite with a fixed argv
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import HOST, wait_listening

REPO = Path(__file__).resolve().parent.parent
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(table_port: int, queue_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://{HOST}:{table_port}/{ACCOUNT};"
        f"QueueEndpoint=http://{HOST}:{queue_port}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    table_port: int
    queue_port: int
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def connection_string(self) -> str:
        return connection_string(self.table_port, self.queue_port)

    def start(self, timeout: float = 30.0) -> Azurite:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed; Azurite needs Node.js")
        base = REPO / "node_modules" / "azurite" / "dist" / "src"
        if not (base / "table" / "main.js").exists():
            raise RuntimeError("Azurite is not installed: run `npm ci` in the repository")
        common = ["--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"]
        keep_alive = ["--require", str(REPO / "devstack" / "azurite_keepalive.js")]  # why: the file says
        self._spawn("table", [node, *keep_alive, str(base / "table" / "main.js"), "--tableHost", HOST,
                              "--tablePort", str(self.table_port), *common])
        self._spawn("queue", [node, *keep_alive, str(base / "queue" / "main.js"), "--queueHost", HOST,
                              "--queuePort", str(self.queue_port), *common])
        wait_listening(self.table_port, timeout)
        wait_listening(self.queue_port, timeout)
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs[name] = subprocess.Popen(  # noqa: S603 - fixed argv, no shell  # nosec B603
            argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, "AZURITE_ACCEPT_EULA": "true"},
        )

    def stop_service(self, name: str) -> None:
        """Kill one service (tests use this to see health turn 503)."""
        proc = self._procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        for name in list(self._procs):
            self.stop_service(name)
