"""The local stack for benchmarks, on free ports: the same building blocks the test fixtures use (local CA, Azurite,
the managed-identity and Key Vault endpoints, the Microsoft simulator, the function app behind the local host),
without pytest. The app runs in this process (its services are `stack.services()`); the simulator runs in its own
process (`simulator="process"`, see bench/simulator_process.py) or, as in the tests, in a thread of this one.

The function app is served for HTTP only: the host object is built as `func start` would build it (same
functions, keys, routes), but only its WSGI front is served. Its queue listeners and timers are not started, so a
benchmark's own queue worker is the only consumer of a queue, and nothing else (a timer's retry drain, a token
sweep) talks to Graph while a figure is measured.

Everything started is stopped by `close()` (or leaving the `with` block), also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import requests
from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError

from devstack import client as devstack_client
from devstack.azurite import Azurite
from devstack.keyvault import KeyVaultEndpoint
from devstack.managed_identity import ManagedIdentityEndpoint, TokenAuthority
from devstack.ports import free_port, wait_listening
from devstack.serving import serve_in_thread, shutdown
from devstack.stack import REPO, load_local_settings
from devstack.tls import LocalTls, create_local_tls
from simulator.core import Simulator
from simulator.server import SimulatorApp, make_https_server
from simulator.testing import RunningSimulator

if TYPE_CHECKING:
    from devstack.host.config import QueueOptions

FUNCTION_KEY = "bench-function-key"
MASTER_KEY = "bench-master-key"

log = logging.getLogger("bench")


class ApiClient(devstack_client.ApiClient):
    """`requests` against the app with the function key, JSON in and out (the shape tests.helpers expects:
    `.get/.put/.post/.patch/.delete(path, ...)`, `.session`, `.base`); a system's `x-system-key` is provisioned
    with the master key on first use (devstack/client.py)."""

    def __init__(self, base: str, key: str | None = FUNCTION_KEY) -> None:
        super().__init__(base, key, master_key=MASTER_KEY, timeout=60)


class BenchStack:
    """Start with `BenchStack(...).start()` or `with BenchStack(...) as stack:`; `settings` are extra app settings
    (e.g. {"GRAPH_GLOBAL_CONCURRENCY": "16"}) on top of the example's defaults."""

    def __init__(self, settings: dict[str, str] | None = None, *, simulator: str = "process") -> None:
        if simulator not in ("thread", "process"):
            raise ValueError("simulator must be 'thread' or 'process'")
        self.simulator_mode = simulator
        self.extra_settings = dict(settings or {})
        self._cleanup = contextlib.ExitStack()
        self._tmp: Path | None = None
        self.tls: LocalTls | None = None
        self.azurite: Azurite | None = None
        self.identity: ManagedIdentityEndpoint | None = None
        self.vault: KeyVaultEndpoint | None = None
        self.simulator: InProcessSimulator | SimulatorProcess | None = None
        self.app_url = ""
        self.env: dict[str, str] = {}
        self._saved_env: dict[str, str] | None = None

    # --- life cycle ----------------------------------------------------------------------------------------------

    def __enter__(self) -> BenchStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> BenchStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self._saved_env = dict(os.environ)
        self._cleanup.callback(self._restore_env)
        tmp = tempfile.TemporaryDirectory(prefix="bench-")
        self._cleanup.callback(tmp.cleanup)
        self._tmp = Path(tmp.name)
        self.tls = create_local_tls(self._tmp / "tls")

        self.azurite = Azurite(free_port(), free_port())
        self._cleanup.callback(self.azurite.stop)  # registered first: stop() also kills a half-started Azurite
        self.azurite.start()

        self.identity = ManagedIdentityEndpoint(TokenAuthority()).start(free_port())
        self._cleanup.callback(self.identity.stop)
        os.environ.update(self.identity.environment())  # as App Service sets them for the worker
        self.vault = KeyVaultEndpoint(self.identity.authority, self.tls).start(free_port())
        self._cleanup.callback(self.vault.stop)

        if self.simulator_mode == "process":
            self.simulator = SimulatorProcess(self.tls, self._tmp / "simulator.log")
        else:
            self.simulator = InProcessSimulator(*start_timed_simulator(self.tls))
        self._cleanup.callback(self.simulator.stop)

        self._start_app()

    def _start_app(self) -> None:
        import function_app
        from devstack.host import LocalFunctionsHost
        from shared import runtime

        assert self.azurite is not None and self.vault is not None and self.tls is not None
        assert self.simulator is not None
        port = free_port()
        self.app_url = f"http://127.0.0.1:{port}"
        self.env = {
            **load_local_settings(REPO / "local.settings.example.json"),
            "AzureWebJobsStorage": self.azurite.connection_string,
            "KEY_VAULT_URL": self.vault.url,
            "OUTBOUND_CA_BUNDLE": str(self.tls.ca_path),
            "PUBLIC_BASE_URL": self.app_url,
            "IDENTITY_AUTHORITY_HOST": self.simulator.url,
            "GRAPH_BASE_URL": f"{self.simulator.url}/v1.0",
            "TABLE_PREFIX": "bench" + uuid.uuid4().hex[:6],
            **self.extra_settings,
        }
        os.environ.update(self.env)
        runtime.reset()
        self._cleanup.callback(runtime.reset)  # its clients point at services that are going away
        host = LocalFunctionsHost(function_app.app, host_json=json.loads((REPO / "host.json").read_text()),
                                  env=dict(os.environ), function_key=FUNCTION_KEY, master_key=MASTER_KEY,
                                  storage_connection_string=self.azurite.connection_string)
        self._cleanup.callback(host.stop)  # closes its invoker; no listeners or timers were started
        # HTTP only: the host's WSGI front, not host.start() (which would also poll queues and run timers).
        server = serve_in_thread(host.wsgi_app, port, name="bench-app-http")
        self._cleanup.callback(shutdown, server)

    def close(self) -> None:
        self._cleanup.close()

    def _restore_env(self) -> None:
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None

    # --- using it ------------------------------------------------------------------------------------------------

    @property
    def sim(self) -> InProcessSimulator | SimulatorProcess:
        assert self.simulator is not None, "the stack is not started"
        return self.simulator

    @property
    def connection_string(self) -> str:
        assert self.azurite is not None, "the stack is not started"
        return self.azurite.connection_string

    def api(self) -> ApiClient:
        return ApiClient(self.app_url)

    def services(self) -> Any:
        """The app's own services object (the one its HTTP functions use): one process, one instance."""
        from shared import runtime

        return runtime.services()

    def service_pids(self) -> dict[str, list[int]]:
        """Process IDs of the services started in their own processes (Azurite's table and queue services, the
        simulator when it runs in a process), so a benchmark can tell their CPU time from the app's."""
        pids: dict[str, list[int]] = {}
        if self.azurite is not None:
            pids["azurite"] = [proc.pid for proc in getattr(self.azurite, "_procs", {}).values()]
        if isinstance(self.simulator, SimulatorProcess):
            pids["simulator"] = [self.simulator.pid]
        return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now(stack: BenchStack) -> dict[str, float]:
    """CPU seconds used so far by this process (`app`) and by each service in a process of its own (`azurite`,
    `simulator`)."""
    out = {"app": time.process_time()}
    for name, pids in stack.service_pids().items():
        out[name] = sum(cpu_seconds(pid) for pid in pids)
    return out


# --- the simulator, with a timeline of the Graph requests it served ------------------------------------------------


@dataclass(frozen=True)
class Served:
    method: str
    path: str
    started: float  # time.perf_counter() when the request reached the simulator
    finished: float  # when its answer was ready (latency and throttling included)


class RequestTimeline:
    """WSGI middleware in front of the simulator: when each Graph request (`/v1.0/...`, a `$batch` envelope
    counted once) arrived and was answered, so a benchmark can tell Graph time from the gaps between requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._served: list[Served] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/v1.0/"):
            return self.app(environ, start_response)
        started = time.perf_counter()
        try:
            return self.app(environ, start_response)
        finally:
            served = Served(environ.get("REQUEST_METHOD", ""), path, started, time.perf_counter())
            with self._lock:
                self._served.append(served)

    def clear(self) -> None:
        with self._lock:
            self._served.clear()

    def served(self) -> list[Served]:
        with self._lock:
            return sorted(self._served, key=lambda s: s.started)


def timed_simulator_app() -> tuple[RequestTimeline, Simulator]:
    """A fresh simulator's WSGI app behind a RequestTimeline; the timeline is also served as JSON at
    `/_bench/timeline` (GET; POST clears it) for a parent process, and `/_bench/bulk` runs many control
    operations in one request (see `bulk_control`)."""
    sim = Simulator()
    holder: list[RequestTimeline] = []
    app = SimulatorApp(sim, extra_handlers={
        "/_bench/timeline": lambda request: _timeline_endpoint(holder[0], request),
        "/_bench/bulk": lambda request: _bulk_endpoint(app.sim, request),
    })
    holder.append(RequestTimeline(app))
    return holder[0], sim


def start_timed_simulator(tls: LocalTls) -> tuple[RunningSimulator, RequestTimeline]:
    """`simulator.testing.start_simulator` (the werkzeug server the tests use, in a thread of this process), with
    a RequestTimeline in front of the simulator's WSGI app."""
    timeline, sim = timed_simulator_app()
    server = make_https_server(timeline.app, tls, "127.0.0.1", 0)
    server.app = timeline
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="simulator",
                              daemon=True)
    thread.start()
    return RunningSimulator(f"https://127.0.0.1:{server.port}", sim, tls.ca_path, server, timeline.app,
                            thread), timeline


def _timeline_endpoint(timeline: RequestTimeline, request: Any) -> Any:
    from werkzeug import Response

    if request.method == "POST":
        timeline.clear()
        return Response("{}", content_type="application/json")
    rows = [[s.method, s.path, s.started, s.finished] for s in timeline.served()]
    return Response(json.dumps(rows), content_type="application/json")


def bulk_control(sim: Simulator, ops: list[dict[str, Any]]) -> list[Any]:
    """Many control operations at once, each through the same methods the control API calls one by one
    (`Control.create_room` / `grant_mailbox`, `GraphState.create_event` / `update_event` / `delete_event`), so
    events written here enter the calendars' change logs like any other write. A benchmark that sets up
    thousands of rooms and hundreds of thousands of events would otherwise spend minutes in HTTP round trips.

    Operations (`op` and its fields), answers in order:
      rooms     tenant, addresses, names?, grantee?, permission?   -> [room address, ...]
      populate  mailbox, events [Graph event body, ...], as_user?   -> [event id, ...]
      create    mailbox, event, as_user?                            -> event id
      update    id, changes                                         -> event id
      delete    id                                                  -> None
    """
    from simulator.control import Control
    from simulator.graph.state import attach_graph

    control = Control(sim)
    graph = attach_graph(sim)
    out: list[Any] = []
    for op in ops:
        kind = op.get("op")
        if kind == "rooms":
            names = op.get("names") or op["addresses"]
            made = []
            for address, name in zip(op["addresses"], names, strict=True):
                room = control.create_room(op["tenant"], address, name)
                if op.get("grantee"):
                    control.grant_mailbox(op["grantee"], room["id"], op.get("permission", "full_access"))
                made.append(room["address"])
            out.append(made)
        elif kind == "populate":
            out.append([graph.create_event(op["mailbox"], body, as_user=op.get("as_user"))["id"]
                        for body in op["events"]])
        elif kind == "create":
            out.append(graph.create_event(op["mailbox"], op["event"], as_user=op.get("as_user"))["id"])
        elif kind == "update":
            out.append(graph.update_event(op["id"], op["changes"])["id"])
        elif kind == "delete":
            graph.delete_event(op["id"])
            out.append(None)
        else:
            raise ValueError(f"unknown bulk operation {kind!r}")
    return out


def _bulk_endpoint(sim: Simulator, request: Any) -> Any:
    from werkzeug import Response

    if request.method != "POST":
        return Response('{"error": "POST only"}', status=405, content_type="application/json")
    try:
        result = bulk_control(sim, json.loads(request.get_data())["ops"])
    except Exception as exc:  # noqa: BLE001 - answered to the benchmark, which raises it
        return Response(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), status=400,
                        content_type="application/json")
    return Response(json.dumps(result), content_type="application/json")


# --- one interface over the simulator, in this process or in its own ------------------------------------------


class InProcessSimulator:
    """The simulator served from a thread of this process (as the test fixtures run it)."""

    mode = "thread"

    def __init__(self, running: RunningSimulator, timeline: RequestTimeline) -> None:
        self.running = running
        self.url = running.url
        self.ca_path = running.ca_path
        self._timeline = timeline

    def authority(self, tenant: str = "common") -> str:
        return self.running.authority(tenant)

    @property
    def control(self) -> Any:
        return self.running.control

    @property
    def graph(self) -> Any:
        return self.running.sim.graph

    def served(self) -> list[Served]:
        return self._timeline.served()

    def bulk(self, ops: list[dict[str, Any]]) -> list[Any]:
        return bulk_control(self.running.sim, ops)

    def clear_timeline(self) -> None:
        self._timeline.clear()

    def stop(self) -> None:
        self.running.stop()


class _Remote:
    def __init__(self, session: requests.Session, url: str) -> None:
        self._session = session
        self._url = url

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._session.request(method, f"{self._url}{path}", json=body, timeout=60)
        if response.status_code >= 400:
            raise RuntimeError(f"simulator control {method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None


class RemoteControl(_Remote):
    """The directory side of the simulator's control API over HTTP (what tests.helpers.make_directory uses)."""

    def create_tenant(self, name: str, domain: str, *, admin_consent_required: str | None = None) -> dict[str, Any]:
        return self.call("POST", "/_control/tenants", {"name": name, "domain": domain,
                                                       "admin_consent_required": admin_consent_required})

    def create_user(self, tenant: str, address: str, display_name: str) -> dict[str, Any]:
        return self.call("POST", f"/_control/tenants/{tenant}/users", {"address": address,
                                                                       "display_name": display_name})

    def create_room(self, tenant: str, address: str, display_name: str) -> dict[str, Any]:
        return self.call("POST", f"/_control/tenants/{tenant}/rooms", {"address": address,
                                                                       "display_name": display_name})

    def grant_mailbox(self, grantee: str, mailbox: str, permission: str = "full_access") -> dict[str, Any]:
        return self.call("POST", "/_control/mailbox-grants", {"grantee": grantee, "mailbox": mailbox,
                                                              "permission": permission})

    def create_app(self, tenant: str, display_name: str, **options: Any) -> dict[str, Any]:
        return self.call("POST", "/_control/apps", {"tenant": tenant, "display_name": display_name, **options})


class RemoteGraph(_Remote):
    """The Graph side's control API over HTTP, with the method names of `simulator.graph.state.GraphState`."""

    def set_latency(self, fixed_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        self.call("PUT", "/_control/graph/latency", {"fixed_ms": fixed_ms, "jitter_ms": jitter_ms})

    def set_throttling(self, **limits: Any) -> dict[str, Any]:
        return self.call("PUT", "/_control/graph/throttling", limits)

    def reset_counters(self) -> None:
        self.call("POST", "/_control/graph/counters/reset")

    def counter_snapshot(self) -> dict[str, Any]:
        return self.call("GET", "/_control/graph/counters")

    def list_events(self, mailbox: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/_control/graph/mailboxes/{mailbox}/events")


class SimulatorProcess:
    """The simulator in its own Python process (`python -m bench.simulator_process`), so its CPU work does not
    share this process's interpreter lock with the app, as Microsoft's servers would not."""

    mode = "process"

    def __init__(self, tls: LocalTls, log_path: Path) -> None:
        port = free_port()
        self._log_path = log_path
        with log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bench.simulator_process", "--port", str(port),
                 "--tls-dir", str(tls.ca_path.parent)],
                cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"https://127.0.0.1:{port}"
        self.ca_path = tls.ca_path
        self.pid = self._proc.pid
        try:
            wait_listening(port, timeout=30)
        except BaseException:
            self.stop()
            raise
        session = requests.Session()
        session.trust_env = False
        session.verify = str(tls.ca_path)
        self._session = session
        self.control = RemoteControl(session, self.url)
        self.graph = RemoteGraph(session, self.url)
        self._remote = _Remote(session, self.url)

    def authority(self, tenant: str = "common") -> str:
        return f"{self.url}/{tenant}"

    def served(self) -> list[Served]:
        return [Served(m, p, s, f) for m, p, s, f in self._remote.call("GET", "/_bench/timeline")]

    def bulk(self, ops: list[dict[str, Any]]) -> list[Any]:
        """`bulk_control` in the simulator's process: many control operations in one request."""
        return self._remote.call("POST", "/_bench/bulk", {"ops": ops})

    def clear_timeline(self) -> None:
        self._remote.call("POST", "/_bench/timeline")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt, so `finally` blocks and `with` exits clean up (SIGINT too:
    a shell starts background jobs with it ignored, and Python then keeps ignoring it)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class PoolFullCounter(logging.Handler):
    """Counts urllib3's "Connection pool is full, discarding connection" warnings (more threads share a client
    than its pool keeps connections for: each extra request opens and drops a connection) instead of printing
    one line each."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.sizes: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if "pool is full" in record.getMessage():
            self.count += 1
            self.sizes[str(record.args[-1]) if isinstance(record.args, tuple) and record.args else "?"] += 1

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


POOL_FULL = PoolFullCounter()


def run_bench(run: Callable[[], int], *, verbose: bool) -> int:
    """A benchmark's main: readable logs, and everything it started stopped on SIGTERM or Ctrl-C."""
    quiet_logs(logging.INFO if verbose else logging.WARNING)
    try:
        with stop_on_sigterm():
            return run()
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130


def quiet_logs(level: int = logging.WARNING) -> None:
    """The app logs one line per job and chunk at INFO; a benchmark's report should stay readable."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for name in ("azure", "urllib3", "msal", "werkzeug"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    pool_logger = logging.getLogger("urllib3.connectionpool")
    pool_logger.addHandler(POOL_FULL)
    pool_logger.propagate = False


# --- a queue worker, as the Functions host runs a queue trigger ---------------------------------------------------


@dataclass
class Delivery:
    """One message handled by the worker, with its timings (time.perf_counter seconds)."""

    body: dict[str, Any]
    received_at: float
    started_at: float
    finished_at: float
    outcome: Any = None
    error: BaseException | None = None


class QueueWorker:
    """Consumes a Storage queue the way the local host's queue trigger does: base64 bodies (host.json
    messageEncoding), the message stays invisible while its function runs, deleted on success, visible again
    after `retry_visibility` seconds on failure. `threads` functions run at once (host.json batchSize); with
    `refill_at` (host.json newBatchThreshold) more are fetched, in one receive, only once no more than that many
    run, as the host does (which may then run batchSize + newBatchThreshold at once; here `threads` stays the
    most, so a benchmark's bound keeps its worker count). An idle queue is polled every `poll_interval` seconds
    (the host's minimum; it is not backed off, so the pickup of a job's first messages is not a matter of luck).
    `on_done` is called from the worker thread after each message. With `keep_deliveries=False` only counts are
    kept (`handled`, `failed`), not one Delivery per message: a benchmark that traces memory then measures the
    app, not its own bookkeeping."""

    def __init__(self, connection_string: str, queue: str, handler: Callable[[dict[str, Any]], Any], *,
                 threads: int = 16, poll_interval: float = 0.1, lease_seconds: int = 600, retry_visibility: int = 10,
                 on_done: Callable[[Delivery], None] | None = None, keep_deliveries: bool = True,
                 refill_at: int | None = None) -> None:
        from devstack.host.queues import ensure_queue, queue_client

        self._client = queue_client(connection_string, queue)
        ensure_queue(self._client)
        self.queue = queue
        self._handler = handler
        self._threads = threads
        self._poll_interval = poll_interval
        self._lease = lease_seconds
        self._retry_visibility = retry_visibility
        # Fetch again once no more than this many run (host.json newBatchThreshold), in one receive, as the host
        # does; None fetches whenever a thread is free (a receive a message when all are busy).
        self._refill_at = threads - 1 if refill_at is None else min(refill_at, threads - 1)
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"bench-{queue}")
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._inflight = 0
        self._thread = threading.Thread(target=self._poll, name=f"bench-poll-{queue}", daemon=True)
        self.deliveries: list[Delivery] = []
        self._keep = keep_deliveries
        self.handled = 0  # messages processed (deleted or put back)
        self.failed = 0  # of which the handler raised
        self.receives = 0  # receive calls that returned messages
        self.peak_inflight = 0

    def __enter__(self) -> QueueWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> QueueWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout)
        with self._changed:
            self._changed.wait_for(lambda: self._inflight == 0, timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._inflight <= self._refill_at or self._stop.is_set())
                free = self._threads - self._inflight
            if self._stop.is_set():
                return
            try:
                pages = self._client.receive_messages(messages_per_page=min(free, 32),
                                                      visibility_timeout=self._lease).by_page()
                messages = list(next(pages, []))
            except AzureError as exc:
                log.warning("queue %s: receive failed (%s); retrying", self.queue, type(exc).__name__)
                messages = []
            if not messages:
                self._stop.wait(self._poll_interval)
                continue
            received = time.perf_counter()
            self.receives += 1
            with self._changed:
                self._inflight += len(messages)
                self.peak_inflight = max(self.peak_inflight, self._inflight)
            for message in messages:
                self._pool.submit(self._process, message, received)

    def _delete(self, message: Any) -> None:
        """Delete a handled message, trying again when the connection fails: the client has no SDK retries (as the
        host's listener), and a server closes idle keep-alive connections (Azurite after 5 s unless
        devstack/azurite_keepalive.js is loaded, Azure after minutes), so a connection taken from the pool after a
        long function can be reset under the request. Counting that as the function failing would pull the room
        again."""
        for attempt in range(3):
            try:
                self._client.delete_message(message.id, message.pop_receipt)
                return
            except (ServiceRequestError, ServiceResponseError):
                if attempt == 2:
                    raise
                log.info("queue %s: delete of %s failed on its connection; trying again", self.queue, message.id)

    def _process(self, message: Any, received: float) -> None:
        from devstack.host.queues import decode

        started = time.perf_counter()
        body: dict[str, Any] = {}
        outcome: Any = None
        error: BaseException | None = None
        try:
            body = json.loads(decode(message.content, use_base64=True))
            outcome = self._handler(body)
            self._delete(message)
        except Exception as exc:  # noqa: BLE001 - as the host: log, and the message comes back later
            error = exc
            log.warning("queue %s: message %s failed: %s", self.queue, message.id, exc)
            with contextlib.suppress(AzureError):
                self._client.update_message(message.id, message.pop_receipt, visibility_timeout=self._retry_visibility)
        delivery = Delivery(body, received, started, time.perf_counter(), outcome, error)
        with self._changed:
            if self._keep:
                self.deliveries.append(delivery)
            self.handled += 1
            self.failed += error is not None
            self._inflight -= 1
            self._changed.notify_all()
        if self._on_done is not None:
            try:
                self._on_done(delivery)
            except Exception:
                log.exception("queue %s: on_done failed", self.queue)


# --- helpers both benchmarks use ---------------------------------------------------------------------------------


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def run_all(work: Callable[[Any], Any], items: list[Any], threads: int) -> list[Any]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(items)))) as pool:
        return list(pool.map(work, items))


def host_queues() -> QueueOptions:
    """host.json's `extensions.queues` as the local host reads it: `batch_size` (queue functions at once on an
    instance) and `new_batch_threshold` (when it fetches more)."""
    from devstack.host.config import HostConfig

    return HostConfig.from_host_json(json.loads((REPO / "host.json").read_text())).queues
