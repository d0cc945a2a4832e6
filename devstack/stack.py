"""The whole local stack in one object: what `./scripts/run` starts and the end-to-end tests reuse.

Order matters: the CA first (every HTTPS endpoint uses it), then Azurite, the managed-identity and Key Vault
endpoints, the Microsoft simulator (a separate process, as it would be a separate service), and last the
function app, whose settings point at all of them. `func start` loads `local.settings.json` into the
environment; so does this, and the stack's own endpoints override the values they replace.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import subprocess  # nosec B404 - starts the local simulator process
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.azurite import Azurite
from devstack.keyvault import KeyVaultEndpoint
from devstack.managed_identity import ManagedIdentityEndpoint, TokenAuthority
from devstack.ports import DEFAULT_PORTS, HOST, free_port, is_listening, wait_listening
from devstack.tls import LocalTls, create_local_tls

REPO = Path(__file__).resolve().parent.parent


def _iso_from_epoch(seconds: float | None) -> str | None:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat() if seconds else None


def load_local_settings(path: Path) -> dict[str, str]:
    """The `Values` of a local.settings.json, as `func start` reads them (strings only)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {str(k): str(v) for k, v in (data.get("Values") or {}).items()}


@dataclass
class LocalStack:
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    state_dir: Path = REPO / ".devstack"
    with_simulator: bool = True
    settings_file: Path = REPO / "local.settings.json"

    tls: LocalTls | None = None
    azurite: Azurite | None = None
    identity: ManagedIdentityEndpoint | None = None
    vault: KeyVaultEndpoint | None = None
    simulator: subprocess.Popen[bytes] | None = None
    host: Any = None
    function_key: str = ""
    master_key: str = ""
    system_key: str = ""  # the demo system's x-system-key
    env: dict[str, str] = field(default_factory=dict)
    demo: dict[str, Any] = field(default_factory=dict)

    @property
    def app_url(self) -> str:
        return f"http://localhost:{self.ports['app']}"

    @property
    def notification_base_url(self) -> str:
        """The app over HTTPS (the local CA's certificate): Graph posts change notifications to https URLs only."""
        return f"https://{HOST}:{self.ports['app_https']}"

    @property
    def console_url(self) -> str:
        return f"{self.app_url}/api/console"

    @property
    def demo_file(self) -> Path:
        return self.state_dir / "demo-directory.json"

    @property
    def simulator_url(self) -> str:
        return f"https://{HOST}:{self.ports['simulator']}"

    def start(self) -> LocalStack:
        if "app_https" not in self.ports:  # a caller's own port map (tests) may predate the HTTPS listener
            self.ports["app_https"] = free_port()
        busy = [f"{name} ({port})" for name, port in self.ports.items() if is_listening(port)]
        if busy:
            raise RuntimeError(f"ports already in use: {', '.join(busy)}; is another stack running?")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.tls = create_local_tls(self.state_dir / "tls")
        self.azurite = Azurite(self.ports["azurite_table"], self.ports["azurite_queue"]).start()
        self.identity = ManagedIdentityEndpoint(TokenAuthority()).start(self.ports["managed_identity"])
        self.vault = KeyVaultEndpoint(self.identity.authority, self.tls).start(self.ports["keyvault"])
        if self.with_simulator:
            self._start_simulator()

        # The example's values are the defaults (schedules and the like); local.settings.json overrides them.
        own = load_local_settings(self.settings_file)
        local = {**load_local_settings(REPO / "local.settings.example.json"), **own}
        # Webhook receivers on this machine are loopback http servers; local.settings.json may still say false.
        local["WEBHOOK_ALLOW_LOOPBACK"] = own.get("WEBHOOK_ALLOW_LOOPBACK", "true")
        # Change notifications come to the HTTPS listener, unless local.settings.json names another (a tunnel to
        # this machine, for the real Graph).
        local["NOTIFICATION_BASE_URL"] = own.get("NOTIFICATION_BASE_URL") or self.notification_base_url
        # The admin console is off by default (Azure); on a laptop it is the quickest way in.
        local["CONSOLE_ENABLED"] = own.get("CONSOLE_ENABLED", "true")
        self.function_key = local.get("LOCAL_FUNCTION_KEY") or secrets.token_urlsafe(24)
        self.master_key = local.get("LOCAL_MASTER_KEY") or secrets.token_urlsafe(32)
        self.env = {
            **local,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "KEY_VAULT_URL": self.vault.url,
            "OUTBOUND_CA_BUNDLE": str(self.tls.ca_path),
            "PUBLIC_BASE_URL": self.app_url,
            **self.identity.environment(),
        }
        if self.with_simulator:
            self.env["IDENTITY_AUTHORITY_HOST"] = self.simulator_url
            self.env["GRAPH_BASE_URL"] = f"{self.simulator_url}/v1.0"
        # The worker reads its settings from the environment, as in Azure.
        os.environ.update(self.env)
        self._start_app()
        if self.with_simulator:
            self._configure_demo()

    def _configure_demo(self) -> None:
        """Create system `demo` (master key) and save the simulator's demo app registration as its integration,
        through the app's own API, so a person can authorize straight away (the README shows the same requests)."""
        from devstack.client import ApiClient

        for _ in range(100):  # the simulator writes the file just before it starts listening
            if self.demo_file.exists() and self.demo_file.stat().st_size:
                break
            time.sleep(0.05)
        self.demo = json.loads(self.demo_file.read_text())
        api = ApiClient(self.app_url, self.function_key, master_key=self.master_key)
        self.system_key = api.system_key("demo") or ""
        if not self.system_key:
            raise RuntimeError("creating the demo system failed (POST /api/systems/demo)")
        response = api.put(
            "/api/systems/demo/integration",
            json={"client_id": self.demo["client_id"], "client_secret": self.demo["client_secret"],
                  "account_type": "common", "tenant_id": self.demo["tenant_id"], "enabled": True,
                  "allowed_return_origins": [self.app_url],
                  # the demo tenant's rooms are in the app's Exchange RBAC scope: app-mode rooms work at once
                  "app_access": {"enabled": True, "tenant_id": self.demo["tenant_id"]},
                  "client_secret_expires_on": _iso_from_epoch(self.demo["client_secret_expires_at"])})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"configuring the demo system failed: {response.status_code} {response.text}")

    def _start_simulator(self) -> None:
        if self.tls is None:
            raise RuntimeError("the local CA must exist before the simulator starts")
        self.demo_file.unlink(missing_ok=True)
        log = (self.state_dir / "simulator.log").open("ab")
        self.simulator = subprocess.Popen(  # noqa: S603 - our own module, fixed argv  # nosec B603
            [sys.executable, "-m", "simulator", "--port", str(self.ports["simulator"]),
             "--tls-dir", str(self.tls.ca_path.parent), "--seed-demo", "--seed-out", str(self.demo_file),
             "--redirect-uri", f"{self.app_url}/api/oauth/callback"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_listening(self.ports["simulator"], timeout=30)

    def _start_app(self) -> None:
        from devstack.host import LocalFunctionsHost
        from shared import runtime

        runtime.reset()
        module = importlib.import_module("function_app")
        host_json = json.loads((REPO / "host.json").read_text())
        if self.azurite is None or self.tls is None:
            raise RuntimeError("Azurite and the local CA must exist before the app starts")
        self.host = LocalFunctionsHost(
            module.app, host_json=host_json, env=dict(os.environ), function_key=self.function_key,
            master_key=self.master_key, storage_connection_string=self.azurite.connection_string,
        )
        self.host.start(port=self.ports["app"], https_port=self.ports["app_https"],
                        ssl_context=self.tls.server_context())

    def stop(self) -> None:
        if self.host is not None:
            from shared import runtime

            self.host.stop()
            self.host = None
            runtime.reset()  # its clients point at services that are going away
        if self.simulator is not None:
            self.simulator.terminate()
            try:
                self.simulator.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.simulator.kill()
            self.simulator = None
        for service in (self.vault, self.identity):
            if service is not None:
                service.stop()
        self.vault = self.identity = None
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None

    def banner(self) -> str:
        lines = [
            "",
            "Outlook calendar sync: local stack is up",
            f"  Function app      {self.app_url}/api   (health: {self.app_url}/api/health)",
            f"  Function app TLS  {self.notification_base_url}/api   (the same app over HTTPS, local CA)",
            f"  Notifications     {self.env.get('NOTIFICATION_BASE_URL', '')}/api/notifications/changes   "
            "(and /lifecycle: Graph's change notifications)",
            *([f"  Admin console     {self.console_url}   (paste the function key and the system key)"]
              if self.env.get("CONSOLE_ENABLED", "").lower() in ("true", "1") else []),
            f"  Function key      {self.function_key}   (header x-functions-key, or ?code=)",
            *([f"  System key        {self.system_key}   (header x-system-key, for system demo)"]
              if self.system_key else []),
            f"  Master key        {self.master_key}   (operator: POST /api/systems/<system>, "
            "POST /admin/functions/<name>)",
            f"  Table storage     http://{HOST}:{self.ports['azurite_table']}  (Azurite, in memory)",
            f"  Queue storage     http://{HOST}:{self.ports['azurite_queue']}  (Azurite, in memory)",
            f"  Key Vault         {self.vault.url if self.vault else '-'}",
        ]
        if self.with_simulator:
            lines += [
                f"  Microsoft (sim)   {self.simulator_url}   (sign-in, Graph /v1.0, control /_control)",
                f"  Demo directory    {self.demo_file}   (simulator log: {self.state_dir / 'simulator.log'})",
            ]
        lines += [f"  Local CA          {self.tls.ca_path if self.tls else '-'}"]
        if self.demo:
            staff = ", ".join(s["address"] for s in self.demo["staff"])
            rooms = "; ".join(f"{d['room']} (delegated to {d['user']})" for d in self.demo["delegations"])
            personal = ", ".join(p["address"] for p in self.demo["personal_accounts"])
            lines += [
                "",
                "  Demo system 'demo' is configured with the simulator's app registration "
                f"(client ID {self.demo['client_id']}).",
                f"  Sign in as staff {staff}, or the personal account {personal}.",
                f"  Room mailbox: {rooms}.",
            ]
        lines += ["", "  Functions:"]
        for fn in self.host.describe() if self.host else []:
            if fn["trigger"] == "http":
                what = f"{','.join(fn['methods'])} {fn['route']} [{fn['auth_level']}]"
            elif fn["trigger"] == "timer":
                what = f"timer {fn['schedule']}"
            else:
                what = f"queue {fn['queue']}"
            lines.append(f"    {fn['name']:<28} {what}")
        lines += ["", "Press Ctrl-C to stop.", ""]
        return "\n".join(lines)
