"""Property-based fuzzing of every route in the OpenAPI description (shared/openapi.py), over real HTTP against
the app served by the local host, with Azurite, the Key Vault endpoint and the Microsoft simulator behind it.

Schemathesis turns each operation into Hypothesis strategies: schema-conforming requests (positive) and requests
that break the schema (negative), mostly for route parameters pinned to real data (two systems sharing one app
registration, each with a connected user and space, chosen calendars, a location settings row and an item; an
export job), so requests get past the 404s into validation, some for generated route parameters, and the
description's examples (with the real credentials and calendar IDs added). Hand-made requests add what generators
rarely produce: malformed and non-JSON bodies, odd IDs, unusual time zones and dates, URLs that do not parse,
unsupported methods, and complete OAuth browser flows (authorize, start, callback, replay). A "hostile" branch grafts
one value of a class that once crashed the app onto a valid request (a trailing or leading newline or control
character in any path parameter or after a number in the query, a lone surrogate in a body string or key, a body
nested past the API's depth, a date at year 1 / 9999 with an offset) and requires a refusal. Each generated request
goes with the function key (header or `code`), without it, or with a wrong one. Every answer is checked:

- never a 5xx, never a stack trace or a source path in the body;
- every non-2xx JSON answer is `{"error": {"code", "message", "microsoft_code"?, "details"?}}`; the OAuth browser
  routes answer their documented redirects or HTML pages;
- a keyed route answers 401 without a valid key and never with one; an anonymous one never answers 401;
- the status, content type and JSON body are the ones the description documents for the operation;
- a rejected (4xx) mutating request wrote nothing.

How "wrote nothing" is proved, cheaply: every outbound HTTP request of the process is seen
(`requests.Session.send`, which every SDK the app uses goes through: Table and Queue storage, Key Vault, MSAL,
Graph). Each fuzz request carries an `x-fuzz-request` number; the local host runs the function on the thread that
serves the request, and that thread (and any pool thread it hands work to) is tagged with the number, so each
outbound call is attributed to the request that caused it, whatever the background queue workers do meanwhile.
A write is any non-GET call to storage, Key Vault or Graph (a Graph `$batch` only when it holds a non-GET): all
but reads and token requests. A rejected mutating request must have no write attributed to it. Independently,
every 4th mutating request to the quiet system (which gets no export jobs, so nothing else writes its rows) is
also checked against a snapshot of that system's rows in every table (ETags). A self-check at the end proves
both detectors see a write made by a request that is then rejected, and accepted `PUT .../locations/...` requests
must each show a write.

The run is seeded (`FUZZ_SEED`, default fixed; route parameters are drawn in a fixed order) and uses no example
database, so a CI failure replays locally with the same requests; `FUZZ_EXAMPLES` scales the number of generated
requests (default: 2,000 and a little more).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import jsonschema
import pytest
import requests
import schemathesis
from azure.data.tables import TableServiceClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance
from schemathesis.core.failures import FailureGroup

from devstack.host.http import HttpFrontend
from devstack.stack import REPO
from shared.openapi import document
from tests.conftest import FUNCTION_KEY, MASTER_KEY
from tests.helpers import RETURN_URL, configure, connect, make_directory, new_system

FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20261121"))
SCALE = float(os.environ.get("FUZZ_EXAMPLES", "2000")) / 2000
TAG = "x-fuzz-request"
READS = {"GET", "HEAD", "OPTIONS"}
BROWSER = {"/api/oauth/start", "/api/oauth/callback", "/api/oauth/result"}
TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|[\w./\\-]+\.py\b|site-packages|"
                   r"(?:/(?:work|usr|opt|home|tmp|srv|var|root)/[\w.-]+)|" + re.escape(str(REPO)))

SNAPSHOT_EVERY = 4  # every 4th mutating request to the quiet system is also checked against its rows (~30 ms)
KEY_MODES = ["header"] * 7 + ["query", "none", "wrong"]  # how each generated request carries the function key
# ... and the system key (x-system-key) on /systems/{system}/ routes: the path's own (for a generated system ID,
# the first world system's, which must answer 403), none (401), or the key of a system outside the world (403).
SYSTEM_KEY_MODES = ["own"] * 8 + ["none", "other"]
OPERATOR = [{"masterKey": []}, {"masterKeyQuery": []}]
SYSTEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Generated requests per operation (before FUZZ_EXAMPLES scaling): more where there is more to validate.
BUDGET = {
    "PUT /api/systems/{system}/integration": 220,
    "PUT /api/systems/{system}/connections/{kind}/{id}/items/{item}": 240,
    "POST /api/systems/{system}/connections/{kind}/{id}/exports": 160,
    "PATCH /api/systems/{system}/connections/{kind}/{id}": 160,
    "POST /api/systems/{system}/connections/{kind}/{id}/authorize": 120,
    "PUT /api/systems/{system}/locations/{location}": 90,
    "POST /api/oauth/callback": 60,
    "GET /api/oauth/callback": 50,
    "GET /api/systems/{system}/connections/user/{id}/freebusy": 110,
    "GET /api/systems/{system}/connections/space/{id}/external-events": 90,
    "DELETE /api/systems/{system}/connections/{kind}/{id}": 60,
    "DELETE /api/systems/{system}/connections/{kind}/{id}/items/{item}": 60,
}
DEFAULT_BUDGET = 50


def leaked_trace(text: str, sent: str) -> str | None:
    """A stack trace or a source path in an answer, unless it merely echoes what the request itself carried."""
    for match in TRACE.finditer(text):
        if match.group(0) not in sent:
            return match.group(0)
    return None


# --- attributing outbound writes to the fuzz request that caused them ------------------------------------------

class WriteRecorder:
    """Outbound non-read HTTP calls of this process, by the fuzz request (x-fuzz-request) being served."""

    def __init__(self, identity_host: str) -> None:
        self._identity_host = identity_host  # the simulator: its /v1.0 is Graph, the rest is sign-in and tokens
        self._token_hosts = {urlsplit(os.environ.get("IDENTITY_ENDPOINT", "")).netloc} - {""}  # managed identity
        self._local = threading.local()
        self._lock = threading.Lock()
        self.writes: dict[int, list[str]] = defaultdict(list)

    def owner(self) -> int | None:
        return getattr(self._local, "owner", None)

    @contextlib.contextmanager
    def serving(self, owner: int | None) -> Iterator[None]:
        previous = self.owner()
        self._local.owner = owner
        try:
            yield
        finally:
            self._local.owner = previous

    def is_write(self, request: requests.PreparedRequest) -> bool:
        method = (request.method or "GET").upper()
        if method in READS:
            return False
        parts = urlsplit(request.url or "")
        if parts.netloc in self._token_hosts:
            return False
        if parts.netloc == self._identity_host and not parts.path.startswith("/v1.0"):
            return False  # token and sign-in requests: no state of the app or of the mailboxes
        if parts.path.endswith("/$batch") and parts.netloc == self._identity_host:
            try:
                inner = json.loads(request.body or b"{}").get("requests", [])
            except (ValueError, AttributeError):
                return True
            return any(str(r.get("method", "GET")).upper() not in READS for r in inner)
        return True

    def record(self, request: requests.PreparedRequest) -> None:
        owner = self.owner()
        if owner is not None and self.is_write(request):
            with self._lock:
                self.writes[owner].append(f"{request.method} {urlsplit(request.url or '').path[:120]}")


@pytest.fixture
def recorder(app, simulator, monkeypatch) -> WriteRecorder:
    watch = WriteRecorder(urlsplit(simulator.url).netloc)
    dispatch = HttpFrontend._dispatch

    def tagged_dispatch(self, request):
        raw = request.headers.get(TAG)
        with watch.serving(int(raw) if raw and raw.isdigit() else None):
            return dispatch(self, request)

    submit = concurrent.futures.ThreadPoolExecutor.submit

    def inheriting_submit(self, fn, /, *args, **kwargs):
        owner = watch.owner()
        if owner is None:
            return submit(self, fn, *args, **kwargs)

        def run(*a, **k):
            with watch.serving(owner):
                return fn(*a, **k)

        return submit(self, run, *args, **kwargs)

    send = requests.Session.send

    def watched_send(self, request, **kwargs):
        watch.record(request)
        return send(self, request, **kwargs)

    monkeypatch.setattr(HttpFrontend, "_dispatch", tagged_dispatch)
    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", inheriting_submit)
    monkeypatch.setattr(requests.Session, "send", watched_send)
    return watch


class TableSnapshot:
    """The rows of one system in every table of the app (its TABLE_PREFIX), with their ETags: the direct proof,
    for the quiet system no background work touches. Every row type stores its `system` as a property (export
    chunks excepted: they are only written for accepted export jobs, which the quiet system never gets)."""

    def __init__(self, connection_string: str, prefix: str, system: str) -> None:
        self._service = TableServiceClient.from_connection_string(connection_string)
        self._prefix = prefix.lower()
        self._system = system
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="fuzz-snapshot")
        self._tables: list[str] = []

    def take(self) -> dict[tuple[str, str, str], str]:
        if not self._tables:
            self._tables = [t.name for t in self._service.list_tables() if t.name.lower().startswith(self._prefix)]

        def rows_of(table: str) -> list[tuple[tuple[str, str, str], str]]:
            client = self._service.get_table_client(table)
            entities = client.query_entities("system eq @system", parameters={"system": self._system},
                                             select=["PartitionKey", "RowKey"])
            return [((table, e["PartitionKey"], e["RowKey"]), e.metadata["etag"]) for e in entities]

        rows: dict[tuple[str, str, str], str] = {}
        for found in self._pool.map(rows_of, self._tables):
            rows.update(found)
        return rows

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._service.close()


# --- the run -------------------------------------------------------------------------------------------------------

@dataclass
class Run:
    base: str
    recorder: WriteRecorder
    snapshot: TableSnapshot
    error_schema: dict[str, Any]
    operations: dict[str, dict[str, Any]]
    session: requests.Session = field(default_factory=requests.Session)
    count: int = 0
    statuses: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)
    per_operation: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    problems: list[str] = field(default_factory=list)
    accepted_location_writes: list[bool] = field(default_factory=list)
    snapshots_compared: int = 0
    quiet_mutations: int = 0
    snapshot_seconds: float = 0.0
    flow_answers: list[requests.Response] = field(default_factory=list)
    after_delete: Callable[[dict[str, str]], None] | None = None
    system_keys: dict[str, str] = field(default_factory=dict)  # the world's systems (the first is the default)
    other_key: str = ""  # an active key of a system outside the world
    system_key_outcomes: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.session.trust_env = False

    def problem(self, text: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(text)

    def key_for(self, system: str) -> str:
        """The system's key if it is one of the world's, else the first world system's (a 403 there)."""
        return self.system_keys.get(system) or next(iter(self.system_keys.values()))

    def system_headers(self, path: str) -> dict[str, str]:
        """x-system-key for a hand-made request to a /systems/{system}/ route."""
        match = re.match(r"^/api/systems/([^/?]+)/", path)
        return {"x-system-key": self.key_for(unquote(match.group(1)))} if match else {}

    def send(self, case: schemathesis.Case, key: str, mode: str, *, compare_snapshot: bool = False,
             system_key: str = "own") -> None:
        self.count += 1
        tag = self.count
        label = f"{case.method.upper()} {case.operation.path}"
        operator = self.operations[label].get("security") == OPERATOR
        headers = {TAG: str(tag)}
        params: dict[str, str] = {}
        secret = MASTER_KEY if operator else FUNCTION_KEY
        if key == "header":
            headers["x-functions-key"] = secret
        elif key == "query":
            params["code"] = secret
        elif key == "wrong":
            headers["x-functions-key"] = "not-the-key"
        if self.system_route(label):
            system = str((case.path_parameters or {}).get("system", ""))
            if system_key == "own":
                headers["x-system-key"] = self.key_for(system)
            elif system_key == "other":
                headers["x-system-key"] = self.other_key
        # Schemathesis generates the security schemes' own parameters too: the key modes alone decide them.
        case.headers = {k: v for k, v in (case.headers or {}).items()
                        if k.lower() not in ("x-functions-key", "x-system-key")}
        case.query = {k: v for k, v in (case.query or {}).items() if k != "code"}
        began = time.monotonic()
        before = self.snapshot.take() if compare_snapshot else None
        self.snapshot_seconds += time.monotonic() - began
        try:
            response = case.call(base_url=self.base, session=self.session, headers=headers, params=params or None,
                                 timeout=30, allow_redirects=False)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
            self.count -= 1  # the client refused to send it: not a request
            return
        except requests.RequestException as exc:
            self.problem(f"{label}: connection failed ({type(exc).__name__}) for {self.describe(case, key, mode)}")
            return
        self.statuses[response.status_code] += 1
        self.per_operation[label][response.status_code] += 1
        self.modes[mode] += 1
        if system_key != "none" and "x-system-key" not in {k.lower() for k in response.request.headers}:
            system_key = "none"  # a negative case that leaves out a required security header (schemathesis drops it)
        self.check(case, key, mode, response, tag, label, system_key)
        if before is not None and response.status_code >= 400:
            self.snapshots_compared += 1
            began = time.monotonic()
            after = self.snapshot.take()
            self.snapshot_seconds += time.monotonic() - began
            if after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))[:3]
                self.problem(f"{label} answered {response.status_code} but table rows changed {changed}: "
                             f"{self.describe(case, key, mode)}")
        if label == "DELETE /api/systems/{system}/connections/{kind}/{id}" and response.status_code == 200 \
                and self.after_delete is not None:
            self.after_delete(dict(case.path_parameters or {}))

    def describe(self, case: schemathesis.Case, key: str, mode: str = "") -> str:
        body = case.body if not isinstance(case.body, bytes) else case.body[:300]
        text = json.dumps(body, default=repr)[:500] if body is not None and not _not_set(body) else "-"
        return (f"{case.method.upper()} {case.formatted_path} query={case.query} headers={case.headers} "
                f"body={text} key={key} media_type={case.media_type} ({mode}, seed {FUZZ_SEED})")

    def system_route(self, label: str) -> bool:
        """A host route of one system (function key and system key), not the operator's or an anonymous one."""
        return label.split(" ", 1)[1].startswith("/api/systems/{system}") \
            and self.operations[label].get("security") is None

    def check(self, case: schemathesis.Case, key: str, mode: str, response: Any, tag: int,
              label: str, system_key: str = "own") -> None:
        status = response.status_code
        operation = self.operations[label]
        anonymous = operation.get("security") == []
        function_ok = anonymous or key in ("header", "query")
        system_route = self.system_route(label)
        keyed_ok = function_ok and (system_key == "own" or not system_route)
        said = f"{label} answered {status}"
        where = self.describe(case, key, mode) + f" system_key={system_key}"
        if function_ok and system_route and system_key != "own":
            self.check_system_key(case, system_key, response, said, where)
        if status >= 500:
            self.problem(f"{said} (5xx): {where} -> {response.text[:300]}")
        prepared = response.request
        body = prepared.body.decode("utf-8", "replace") if isinstance(prepared.body, bytes) else str(prepared.body)
        sent = f"{unquote(prepared.url or '')} {prepared.headers} {body} {unquote(body)} {prepared.body!r}"
        leaked = leaked_trace(f"{response.text} {json.dumps(response.headers)}", sent)
        if leaked:
            self.problem(f"{said} with a stack trace or source path ({leaked!r}): {where} -> {response.text[:300]}")
        if not anonymous and not function_ok and status != 401:
            self.problem(f"{said} without a valid key ({key}): {where}")
        if keyed_ok and status == 401:
            self.problem(f"{said} 401 with a valid key or on an anonymous route: {where}")
        content_type = header(response, "content-type")
        if case.operation.path in BROWSER:
            if 300 <= status < 400 and not header(response, "location"):
                self.problem(f"{said} a redirect without Location: {where}")
            if status in (200, 400) and not content_type.startswith("text/html"):
                self.problem(f"{said} {content_type!r}, not an HTML page: {where}")
        elif status >= 300:
            if not content_type.startswith("application/json"):
                self.problem(f"{said} {content_type!r}, not the JSON error shape: {where}")
            else:
                try:
                    jsonschema.validate(response.json(), self.error_schema)
                except (ValueError, jsonschema.ValidationError) as exc:
                    self.problem(f"{said} outside the error shape ({str(exc)[:150]}): {where} -> "
                                 f"{response.text[:300]}")
        if keyed_ok and status < 500:
            try:
                case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                         response_schema_conformance])
            except (AssertionError, FailureGroup) as exc:
                found = "; ".join(str(e).strip().splitlines()[0][:150] for e in getattr(exc, "exceptions", [exc]))
                self.problem(f"{said}, not as documented ({found}): {where} -> {response.text[:300]}")
        mutation = (case.headers or {}).get(HOSTILE)
        if mutation and keyed_ok and status < 400:
            self.problem(f"{said} to a request with a hostile value ({mutation}); it must be refused: {where}")
        writes = self.recorder.writes.get(tag, [])
        if case.method.upper() not in READS and status >= 400 and writes:
            self.problem(f"{said} but wrote {writes[:3]}: {where}")
        if label == "PUT /api/systems/{system}/locations/{location}" and status == 200:
            self.accepted_location_writes.append(bool(writes))


    def check_system_key(self, case: schemathesis.Case, system_key: str, response: Any, said: str,
                         where: str) -> None:
        """Without the path's system key a system route never succeeds: 401 without one, 403 with another
        system's; a system ID that cannot exist is refused as such (400), a path the host cannot route 404/405."""
        status = response.status_code
        try:
            code = response.json().get("error", {}).get("code", "")
        except (ValueError, AttributeError):
            code = ""
        system = str((case.path_parameters or {}).get("system", ""))
        expected = (401, "system_key_required") if system_key == "none" else (403, "system_key_invalid")
        self.system_key_outcomes[(system_key, status)] += 1
        if status < 400:
            self.problem(f"{said} with system key {system_key}: {where}")
            return
        if (status, code) == expected or (code in ("not_found", "method_not_allowed") and status in (404, 405)):
            return
        if status == 400 and code == "validation_failed" and not SYSTEM_ID.match(system):
            return
        self.problem(f"{said} {code!r} with system key {system_key}, expected {expected}: {where}")


def header(response: Any, name: str) -> str:
    """A header of a schemathesis Response (values are lists, names as sent)."""
    for key, values in response.headers.items():
        if key.lower() == name:
            return values[0] if isinstance(values, list) else values
    return ""


def _not_set(value: Any) -> bool:
    return type(value).__name__ == "NotSet"


# --- real data for the routes to find -------------------------------------------------------------------------------

@dataclass
class World:
    """Two systems with the same app registration, each with a connected user and space (calendars chosen), a
    location and an item: `system` also gets the export jobs and the connections DELETE may remove (both start
    background work or need reconnecting); `quiet` gets neither, so its rows change only by the request in
    flight, and rejected mutating requests to it are also checked against a snapshot of its rows."""

    system: str
    quiet: str
    user: str
    space: str
    victims: list[tuple[str, str]]
    location: str
    item: str
    job: str
    calendars: dict[str, str]
    directory: Any

    def pins(self, label: str) -> list[dict[str, str]]:
        """Route parameter sets that exist, for the operation."""
        path = label.split(" ", 1)[1]
        names = set(re.findall(r"\{(\w+)\}", path))
        if label == "DELETE /api/systems/{system}/connections/{kind}/{id}":
            return [{"system": self.system, "kind": kind, "id": subject} for kind, subject in self.victims]
        systems = [self.system] if "/exports" in path else [self.system, self.quiet]
        subjects = [("user", self.user), ("space", self.space)]
        if path.endswith("/freebusy"):
            subjects = [("user", self.user)]
        elif "/external-events" in path:
            subjects = [("space", self.space)]
        pins = []
        for system in systems:
            for kind, subject in subjects:
                pin = {"system": system, "kind": kind, "id": subject, "location": self.location, "item": self.item,
                       "job": self.job}
                pins.append({k: v for k, v in pin.items() if k in names})
        unique = {tuple(sorted(p.items())): p for p in pins}  # in a fixed order: the seed replays the same draws
        return list(unique.values())


def prepare_system(api, simulator, d, system: str, user: str, space: str) -> dict[str, str]:
    configure(api, system, d)
    connect(api, simulator, system, "user", user, d.staff)
    connect(api, simulator, system, "space", space, d.staff)
    assert api.put(f"/api/systems/{system}/locations/main",
                   json={"title_mode": "public_nickname", "populate_creator": True}).status_code == 200
    response = api.patch(f"/api/systems/{system}/connections/space/{space}",
                         json={"sync_resource": d.room, "location": "main", "two_way": True})
    assert response.status_code == 200, response.text
    calendars = {}
    for kind, subject in (("user", user), ("space", space)):
        listed = api.get(f"/api/systems/{system}/connections/{kind}/{subject}/calendars")
        assert listed.status_code == 200, listed.text
        calendars[kind] = listed.json()["calendars"][0]["id"]
        choice = {"sync_calendar_id": calendars[kind]}
        if kind == "user":
            choice["freebusy_calendar_id"] = calendars[kind]
        assert api.patch(f"/api/systems/{system}/connections/{kind}/{subject}", json=choice).status_code == 200
        assert api.put(f"/api/systems/{system}/connections/{kind}/{subject}/items/b-1",
                       json=ITEM).status_code == 200
    return calendars


ITEM = {"occurrences": [{"key": "k1", "start": "2030-06-03T09:00:00", "end": "2030-06-03T10:00:00",
                         "time_zone": "Europe/London"}], "public_nickname": "Ada", "location": "main"}


def build_world(api, app, simulator) -> World:
    d = make_directory(simulator, app.redirect_uri)
    system, quiet, user, space = new_system(), new_system(), "u1", "s1"
    calendars = prepare_system(api, simulator, d, system, user, space)
    prepare_system(api, simulator, d, quiet, user, space)
    victims = [("user", "u-gone"), ("space", "s-gone")]
    for kind, subject in victims:
        connect(api, simulator, system, kind, subject, d.staff)
    started = api.post(f"/api/systems/{system}/connections/user/{user}/exports",
                       json={"mode": "all", "items": [{"item": "b-2", **ITEM}]})
    assert started.status_code == 202, started.text
    return World(system, quiet, user, space, victims, "main", "b-1", started.json()["job"], calendars, d)


def fuzz_document(world: World) -> dict[str, Any]:
    """The served description, with examples made of the real data (the integration's own credentials, real
    calendar IDs), so the explicit phase reaches the success paths too."""
    doc = document()
    d = world.directory
    paths = doc["paths"]

    def examples(path: str, method: str, values: dict[str, Any]) -> None:
        media = paths[path][method]["requestBody"]["content"]["application/json"]
        media.setdefault("examples", {}).update({name: {"value": value} for name, value in values.items()})

    examples("/api/systems/{system}/integration", "put", {"real": {
        "client_id": d.client_id, "client_secret": d.secret, "account_type": "common", "enabled": True,
        "allowed_return_origins": ["https://booking.example.edu"], "client_secret_expires_on": "2031-01-01"}})
    examples("/api/systems/{system}/connections/{kind}/{id}/authorize", "post", {"real": {"return_url": RETURN_URL}})
    examples("/api/systems/{system}/connections/{kind}/{id}", "patch", {
        "calendar": {"sync_calendar_id": world.calendars["user"]},
        "room": {"sync_resource": d.room, "sync_calendar_id": world.calendars["space"], "two_way": True},
        "no access": {"sync_resource": d.other_room},
    })
    return doc


def explicit_requests(world: World) -> Iterator[tuple[str, dict[str, str], dict[str, Any]]]:
    """Hand-made requests generators rarely produce: malformed bodies, wrong media types, boundary values."""
    system, user, space = world.system, world.user, world.space
    bodies: list[tuple[str, bytes | None]] = [
        ("application/json", b""), ("application/json", b"{"), ("application/json", b"[]"),
        ("application/json", b"null"), ("application/json", b"\xff\xfe"), ("text/plain", b"{}"),
        ("application/json", json.dumps({"x": "\u0000" * 10}).encode()),
        ("application/merge-patch+json", b'{"two_way": "yes"}'),
        ("application/json", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),  # past the parser's recursion
        ("application/json", b'{"title": "\\ud800", "\\udfff": 1}'),
    ]
    keyed = [
        ("PUT", f"/api/systems/{system}/integration"),
        ("PUT", f"/api/systems/{system}/locations/main"),
        ("POST", f"/api/systems/{system}/connections/user/{user}/authorize"),
        ("PATCH", f"/api/systems/{system}/connections/space/{space}"),
        ("PUT", f"/api/systems/{system}/connections/user/{user}/items/b-9"),
        ("POST", f"/api/systems/{system}/connections/space/{space}/exports"),
    ]
    for method, path in keyed:
        for media_type, body in bodies:
            yield method, {"path": path, "content-type": media_type}, {"data": body}
    odd_ids = ["%2e%2e", "a%23b", "a%3Fb", "%00", "a%0Ab", "%E2%80%8F", "x" * 65, "-lead", "%C3%A9t%C3%A9",
               "a%5Cb", "a%2Fb", "a%0A", "a%0D%0A", "a%00", "%0Aa"]
    for odd in odd_ids:
        for path in (f"/api/systems/{odd}/integration", f"/api/systems/{system}/locations/{odd}",
                     f"/api/systems/{system}/connections/user/{odd}", f"/api/systems/{odd}/alerts",
                     f"/api/systems/{system}/connections/user/{user}/items/{odd}",
                     f"/api/systems/{system}/connections/space/{space}/exports/{odd}"):
            yield "GET", {"path": path}, {}
        yield "PUT", {"path": f"/api/systems/{system}/locations/{odd}"}, {"json": {"title_mode": "patron_name"}}
        yield "DELETE", {"path": f"/api/systems/{system}/connections/user/{user}/items/{odd}"}, {}
    for query in ("start=2030-01-01&end=2030-03-15", "start=2030-01-01&end=2029-01-01", "start=x&end=y",
                  "start=2030-01-01T00:00:00&end=2030-01-02T00:00:00", "start=2030-02-30&end=2030-03-01",
                  "start=2030-01-01T00:00:00%2B25:00&end=2030-01-02", "start=2030-01-01"):
        yield "GET", {"path": f"/api/systems/{system}/connections/user/{user}/freebusy?{query}"}, {}
    d = world.directory
    real = {"client_id": d.client_id, "client_secret": d.secret, "account_type": "common", "enabled": True,
            "allowed_return_origins": ["https://booking.example.edu"]}
    for change in ({"account_type": "single_tenant", "tenant_id": "unknown-tenant.example"},
                   {"account_type": "single_tenant", "tenant_id": "11111111-2222-3333-4444-555555555555"},
                   {"tenant_id": "organizations"}, {"allowed_return_origins": ["http://["]},
                   {"allowed_return_origins": ["https://a:99999"]}, {"webhook_url": "https://[::1"},
                   {"webhook_url": "https://hooks.example.edu/x", "webhook_secret": "s" * 31},
                   {"client_secret_expires_on": "2030-02-30"},
                   {"client_secret_expires_on": "9999-12-31T23:59:59+14:00"},
                   {"client_id": d.client_id.upper(), "client_secret": " "}):
        yield "PUT", {"path": f"/api/systems/{world.quiet}/integration"}, {"json": {**real, **change}}
    for return_url in ("http://[", "https://booking.example.edu:99999/x", "//booking.example.edu/x",
                       "https://booking.example.edu\\@evil.example/", "javascript:alert(1)"):
        yield "POST", {"path": f"/api/systems/{world.quiet}/connections/user/{user}/authorize"}, {
            "json": {"return_url": return_url}}
    for zone in ("Europe", "America", "a" * 300, "../../etc/passwd", "Europe/London\u0000", "posixrules", ""):
        item = {"occurrences": [{"key": "z", "start": "2030-06-03T09:00:00", "end": "2030-06-03T10:00:00",
                                 "time_zone": zone}]}
        yield "PUT", {"path": f"/api/systems/{world.quiet}/connections/user/{user}/items/tz"}, {"json": item}
        yield "POST", {"path": f"/api/systems/{system}/connections/user/{user}/exports"}, {
            "json": {"mode": "all", "items": [{"item": "tz", **item}]}}
    for index, (start, end) in enumerate((
            ("2030-03-31T01:30:00", "2030-03-31T02:30:00"), ("0001-01-01T00:00:00", "0001-01-01T01:00:00"),
            ("9999-12-31T22:00:00", "9999-12-31T23:59:59"), ("2030-06-03T09:00:00+14:00", "2030-06-03"),
            ("1900-01-01T00:00:00", "1900-01-01T01:00:00"), ("2030-06-03T09:00:00.123456789", "2030-06-03T10:00"))):
        item = {"occurrences": [{"key": "t", "start": start, "end": end, "time_zone": "Europe/London"}]}
        path = f"/api/systems/{world.quiet}/connections/space/{space}/items/t{index}"
        yield "PUT", {"path": path}, {"json": item}
        yield "GET", {"path": path}, {}
        yield "DELETE", {"path": path}, {}
    for body in ({"sync_resource": "a@b"}, {"sync_resource": "@"}, {"sync_resource": "x@y/../../me"},
                 {"sync_resource": "room@x?$select=id"}, {"sync_resource": "r@x", "sync_calendar_id": "../../x"},
                 {"sync_calendar_id": "%2e%2e%2fx"}, {"sync_calendar_id": "a" * 3000}, {"freebusy_calendar_id": "?"}):
        yield "PATCH", {"path": f"/api/systems/{world.quiet}/connections/user/{user}"}, {"json": body}
    for query in ("cursor=-1", "cursor=1e3", "limit=0", "limit=501", "limit=9999999999999999999999", "cursor=%00",
                  "cursor=99999999999999999999999", "cursor=9223372036854775808", "cursor=" + "9" * 5000):
        yield "GET", {"path": f"/api/systems/{system}/connections/space/{space}/external-events?{query}"}, {}
    for method, path in (("PATCH", "/api/health"), ("DELETE", f"/api/systems/{system}/integration"),
                         ("POST", f"/api/systems/{system}/alerts"), ("PUT", "/api/oauth/start"),
                         ("PATCH", f"/api/systems/{system}/connections/user/{user}/items/b-1"),
                         ("GET", f"/api/systems/{system}/connections/user/{user}/authorize"),
                         ("GET", "/api/nowhere"), ("GET", "/api/systems")):
        yield method, {"path": path}, {}
    for query in ("remove_events=TRUE", "remove_events=1", "remove_events="):
        yield "DELETE", {"path": f"/api/systems/{system}/connections/user/nobody?{query}"}, {}


def browser_flows(run: Run, world: World) -> Iterator[tuple[str, str, dict[str, Any], set[int]]]:
    """The OAuth browser routes with states that exist: each flow is started by the host (authorize), the browser
    is sent on (start), and Microsoft's answer comes back (callback), then the same state again (a replay)."""
    answers: Callable[[], requests.Response] = lambda: run.flow_answers[-1]  # noqa: E731
    callbacks: list[tuple[str, dict[str, str]]] = [
        ("POST", {"error": "access_denied", "error_description": "AADSTS65004: User declined to consent"}),
        ("GET", {"error": "consent_required", "error_description": "AADSTS65001: consent", "error_codes": "[65001]"}),
        ("GET", {"code": "not-a-code-microsoft-issued"}),
        ("POST", {"code": "0" * 64, "session_state": "x"}),
        ("POST", {"error": "\u0000<script>", "error_description": "AADSTS9999999999999999: \u202e\u00e9"}),
    ]
    for index, (method, fields) in enumerate(callbacks):
        kind, subject = ("user", world.user) if index % 2 == 0 else ("space", world.space)
        yield ("POST", f"/api/systems/{world.quiet}/connections/{kind}/{subject}/authorize?code={FUNCTION_KEY}",
               {"json": {"return_url": RETURN_URL, "login_hint": "nobody@example.org"}}, {201})
        state = dict(parse_qsl(urlsplit(answers().json()["authorize_url"]).query))["state"]
        yield "GET", f"/api/oauth/start?{urlencode({'state': state})}", {}, {302}
        fields = {**fields, "state": state}
        request: dict[str, Any] = {"data": fields} if method == "POST" else {"params": fields}
        yield method, "/api/oauth/callback", request, {303}
        yield method, "/api/oauth/callback", request, {400}  # the state is single use
        yield "GET", f"/api/oauth/start?{urlencode({'state': state})}", {}, {400}
    for outcome, status in (("connected", 200), ("consent_denied", 400), ("nonsense", 400)):
        yield "GET", f"/api/oauth/result?outcome={outcome}&kind=user&id=u1", {}, {status}


# --- the test --------------------------------------------------------------------------------------------------------

def test_fuzz_every_route(app, api, simulator, recorder, storage_connection_string, monkeypatch, request):
    started = time.monotonic()
    world = build_world(api, app, simulator)
    setup_seconds = time.monotonic() - started
    doc = fuzz_document(world)
    schema = schemathesis.openapi.from_dict(doc)
    operations = {f"{m.upper()} {p}": op for p, item in doc["paths"].items() for m, op in item.items()
                  if m != "parameters"}
    error_schema = {**doc["components"]["schemas"]["Error"], "definitions": {}}
    snapshot = TableSnapshot(storage_connection_string, app.env["TABLE_PREFIX"], world.quiet)
    request.addfinalizer(snapshot.close)
    run = Run(app.url, recorder, snapshot, error_schema, operations)
    run.system_keys = {world.system: api.system_key(world.system), world.quiet: api.system_key(world.quiet)}
    run.other_key = api.system_key(new_system())
    assert all(run.system_keys.values()) and run.other_key

    def reconnect(path_parameters: dict[str, str]) -> None:
        subject = (path_parameters.get("kind", ""), path_parameters.get("id", ""))
        if subject in world.victims:
            connect(api, simulator, world.system, subject[0], subject[1], world.directory.staff)

    run.after_delete = reconnect

    # 1. Hand-made requests.
    began = time.monotonic()
    for method, target, kwargs in explicit_requests(world):
        run.count += 1
        path = target["path"]
        headers = {"x-functions-key": FUNCTION_KEY, TAG: str(run.count), **run.system_headers(path)}
        if "content-type" in target:
            headers["content-type"] = target["content-type"]
        response = run.session.request(method, f"{app.url}{path}", headers=headers, timeout=30,
                                       allow_redirects=False, **kwargs)
        run.statuses[response.status_code] += 1
        run.per_operation["(hand-made)"][response.status_code] += 1
        check_raw(run, method, path, kwargs, response)

    for method, path, kwargs, expected in browser_flows(run, world):
        run.count += 1
        response = run.session.request(method, f"{app.url}{path}", timeout=30, allow_redirects=False,
                                       headers={TAG: str(run.count), **run.system_headers(path)}, **kwargs)
        run.statuses[response.status_code] += 1
        run.per_operation["(hand-made)"][response.status_code] += 1
        check_raw(run, method, path, kwargs, response, expected)
        if response.status_code == 303 and not response.headers["location"].startswith(RETURN_URL):
            run.problem(f"{method} {path} sent the browser to {response.headers['location']!r}")
        run.flow_answers.append(response)

    run.seconds["(hand-made)"] = time.monotonic() - began

    # 2. Generated requests, operation by operation (mutating ones last, deletes at the very end).
    order = {"GET": 0, "PUT": 1, "POST": 1, "PATCH": 1, "DELETE": 2}
    labels = sorted(operations, key=lambda label: (order[label.split()[0]], label))
    for label in labels:
        method, path = label.split(" ", 1)
        operation = schema[path][method]
        budget = max(10, round(BUDGET.get(label, DEFAULT_BUDGET) * SCALE))
        began = time.monotonic()
        fuzz_operation(run, operation, world, label, budget)
        run.seconds[label] += time.monotonic() - began

    self_check(run, world, monkeypatch)
    elapsed = time.monotonic() - started
    print(f"\nfuzz: {run.count} requests in {elapsed:.1f}s (setup {setup_seconds:.1f}s), seed {FUZZ_SEED}; "
          f"{run.snapshots_compared} rejected mutating requests also checked against a snapshot of the quiet "
          f"system's rows ({run.snapshot_seconds:.1f}s of snapshots)")
    print("generated: " + ", ".join(f"{m}: {n}" for m, n in sorted(run.modes.items()))
          + f"; hand-made: {sum(run.per_operation['(hand-made)'].values())}")
    print("status histogram: " + ", ".join(f"{s}: {n}" for s, n in sorted(run.statuses.items())))
    for label in sorted(run.per_operation):
        print(f"  {label} ({run.seconds[label]:.1f}s): "
              + ", ".join(f"{s}: {n}" for s, n in sorted(run.per_operation[label].items())))
    began = time.monotonic()
    unfinished = wait_for_export_jobs(run, world)
    print(f"waited {time.monotonic() - began:.1f}s for the export jobs to finish; unfinished: {unfinished[:5]}")
    assert not run.problems, f"{len(run.problems)} problem(s):\n" + "\n".join(run.problems[:40])
    assert sum(run.modes.values()) >= 2000 * SCALE, f"only {sum(run.modes.values())} generated requests"
    assert run.statuses[401] > 0 and sum(n for s, n in run.statuses.items() if 200 <= s < 300) > 100
    print("without the path's system key: " + ", ".join(f"{m} {s}: {n}" for (m, s), n in
                                                         sorted(run.system_key_outcomes.items())))
    assert run.system_key_outcomes[("none", 401)] > 20 and run.system_key_outcomes[("other", 403)] > 20


def self_check(run: Run, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detectors are not blind: a request that writes a row and is then rejected is caught by both."""
    from shared.errors import ValidationFailed
    from shared.integrations import IntegrationService

    original = IntegrationService.save_location

    def writes_then_refuses(self, system: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        original(self, system, location, body)
        raise ValidationFailed("title_mode", "refused after writing (fuzz harness self-check)")

    tag = run.count + 1_000_000
    before = run.snapshot.take()
    with monkeypatch.context() as patch:
        patch.setattr(IntegrationService, "save_location", writes_then_refuses)
        response = run.session.put(f"{run.base}/api/systems/{world.quiet}/locations/self-check",
                                   json={"title_mode": "patron_name"}, timeout=30,
                                   headers={"x-functions-key": FUNCTION_KEY, TAG: str(tag),
                                            "x-system-key": run.key_for(world.quiet)})
    if response.status_code != 400:
        run.problem(f"self-check: the writing-then-refusing PUT location answered {response.status_code}")
    if not run.recorder.writes.get(tag):
        run.problem("self-check: the write recorder missed a write made by a rejected request")
    if run.snapshot.take() == before:
        run.problem("self-check: the row snapshot missed a write made by a rejected request")
    if not run.accepted_location_writes or not all(run.accepted_location_writes):
        run.problem("self-check: the write recorder saw no write for an accepted PUT location")


def wait_for_export_jobs(run: Run, world: World, timeout: float = 30.0) -> list[str]:
    """Leave no export job of this test running into the next test (they run from the queue in the background);
    answers the jobs still unfinished at the deadline. Each job's own status is read: the list route's `state`
    is the one stored at creation."""
    deadline = time.monotonic() + timeout
    headers = {"x-functions-key": FUNCTION_KEY, "x-system-key": run.key_for(world.system)}
    unfinished: list[str] = []
    for kind, subject in (("user", world.user), ("space", world.space)):
        url = f"{run.base}/api/systems/{world.system}/connections/{kind}/{subject}/exports"
        for job in run.session.get(url, headers=headers, timeout=30).json().get("jobs", []):
            while True:
                state = run.session.get(f"{url}/{job['job']}", headers=headers, timeout=30).json().get("state", "")
                if state.startswith("completed"):
                    break
                if time.monotonic() > deadline:
                    unfinished.append(f"{kind}/{subject} job {job['job']}: {state}")
                    break
                time.sleep(0.2)
    return unfinished


def check_raw(run: Run, method: str, path: str, kwargs: dict[str, Any], response: requests.Response,
              expected: set[int] | None = None) -> None:
    said = f"{method} {path} answered {response.status_code}"
    if response.status_code >= 500:
        run.problem(f"{said} (5xx) for {kwargs} -> {response.text[:300]}")
    leaked = leaked_trace(response.text, unquote(f"{path} {kwargs!r}"))
    if leaked:
        run.problem(f"{said} with a stack trace or source path ({leaked!r}) -> {response.text[:300]}")
    if expected is not None and response.status_code not in expected:
        run.problem(f"{said}, expected {sorted(expected)}, for {kwargs} -> {response.text[:300]}")
    if urlsplit(path).path in BROWSER:
        content_type = response.headers.get("content-type", "")
        if 300 <= response.status_code < 400 and not response.headers.get("location"):
            run.problem(f"{said} a redirect without Location")
        if response.status_code in (200, 400) and not content_type.startswith("text/html"):
            run.problem(f"{said} {content_type!r}, not an HTML page")
    elif response.status_code >= 300:
        try:
            jsonschema.validate(response.json(), run.error_schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            run.problem(f"{said} outside the error shape ({str(exc)[:150]}) -> {response.text[:300]}")
    if method not in READS and response.status_code >= 400 and run.recorder.writes.get(run.count):
        run.problem(f"{said} but wrote {run.recorder.writes[run.count][:3]} for {kwargs}")


# How often each kind of request is drawn: mostly schema-conforming and schema-breaking ones against the real
# route parameters (deep validation), some against generated ones (routing, 404s), and the documented examples.
WEIGHTS = {"positive": 3, "negative": 3, "positive-free": 1, "negative-free": 1, "example": 2, "hostile": 2}


def fuzz_operation(run: Run, operation: Any, world: World, label: str, budget: int) -> None:
    pins = world.pins(label)
    branches: dict[str, Any] = {}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        branches[f"{mode.value}-free"] = operation.as_strategy(generation_mode=mode)
        if pins:
            branches[mode.value] = st.sampled_from(pins).flatmap(functools.partial(_pinned, operation, mode))
        if pins and mode == GenerationMode.POSITIVE:  # a valid request with one hostile value grafted on
            branches["hostile"] = branches[mode.value].flatmap(hostile)
    examples = _examples(operation, pins)
    if examples:
        branches["example"] = st.one_of(examples)
    names = [name for name, weight in WEIGHTS.items() if name in branches for _ in range(weight)]
    cases = st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), branches[name]))

    @seed(FUZZ_SEED)
    @settings(max_examples=budget, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(drawn=cases, key=st.sampled_from(KEY_MODES), system_key=st.sampled_from(SYSTEM_KEY_MODES))
    def fuzz(drawn: tuple[str, schemathesis.Case], key: str, system_key: str) -> None:
        mode, case = drawn
        quiet = case.method.upper() not in READS and (case.path_parameters or {}).get("system") == world.quiet
        if quiet:
            run.quiet_mutations += 1
        run.send(case, key, mode, compare_snapshot=quiet and run.quiet_mutations % SNAPSHOT_EVERY == 0,
                 system_key=system_key)

    fuzz()


# --- hostile values (issue 12): each class below must be refused with a 4xx, never a 5xx, and write nothing -------

HOSTILE = "x-fuzz-hostile"  # header naming the mutation, so the check knows the request must be refused
CONTROL = ["\n", "\r\n", "\r", "\t", "\x00", "\x0b", "\x1b", "\x7f", "\x85", "\u2028"]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
EXTREME_DATES = ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59-14:00",
                 "9999-12-31T23:59:59+14:00", "0001-01-01", "9999-12-31", "1899-12-31T23:59:59Z",
                 "3000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999-00:01"]
DATE_FIELDS = {"start", "end", "client_secret_expires_on"}
NUMBER_PARAMETERS = {"cursor", "limit"}


def hostile(case: schemathesis.Case) -> Any:
    """One mutation of a valid request: a trailing (or leading) newline or control character in a path parameter,
    a lone surrogate in a body string or key, a body nested deeper than the API allows, an extreme date with an
    offset in a date field, a control character after a number in the query."""
    options: list[tuple[str, str]] = [("path", name) for name in sorted(case.path_parameters or {})]
    options += [("query", name) for name in sorted(case.query or {}) if name in DATE_FIELDS | NUMBER_PARAMETERS]
    if isinstance(case.body, dict) and "json" in str(case.media_type):
        options += [("surrogate", ""), ("nesting", "")]
        if _date_paths(case.body) or case.operation.path.endswith("/integration"):
            options.append(("date", ""))
    if not options:
        return st.just(case)
    return st.sampled_from(options).flatmap(lambda option: _mutated(case, *option))


def _mutated(case: schemathesis.Case, kind: str, name: str) -> Any:
    def mark(case: schemathesis.Case, what: str) -> schemathesis.Case:
        case.headers = {**(case.headers or {}), HOSTILE: what}
        return case

    if kind == "path":
        def path(control: str, leading: bool) -> schemathesis.Case:
            value = str(case.path_parameters[name])
            # Percent-encoded here: schemathesis puts path parameters into the URL as they are.
            case.path_parameters = {**case.path_parameters,
                                    name: quote(control + value if leading else value + control, safe="")}
            return mark(case, f"path {name} {control!r}")
        return st.builds(path, st.sampled_from(CONTROL), st.booleans())
    if kind == "query":
        values = st.sampled_from(EXTREME_DATES) if name in DATE_FIELDS else st.sampled_from(CONTROL).map(
            lambda control: f"{case.query[name]}{control}")

        def query(value: str) -> schemathesis.Case:
            case.query = {**case.query, name: value}
            return mark(case, f"query {name}")
        return values.map(query)
    if kind == "surrogate":
        def surrogate(char: str, in_key: bool, pick: int) -> schemathesis.Case:
            strings = _string_paths(case.body)
            if in_key or not strings:
                case.body = {**case.body, f"x{char}": "x"}
            else:
                parent, key = strings[pick % len(strings)]
                parent[key] = f"{parent[key]}{char}"
            return mark(case, "surrogate")
        return st.builds(surrogate, st.sampled_from(SURROGATES), st.booleans(), st.integers(0, 1000))
    if kind == "nesting":
        def nesting(depth: int, field: str) -> schemathesis.Case:
            value: Any = []
            for _ in range(depth):  # json.dumps recurses: far deeper and the client itself fails
                value = [value]
            case.body = {**case.body, field: value}
            return mark(case, f"nesting {depth}")
        return st.builds(nesting, st.integers(17, 500), st.sampled_from(sorted(case.body) or ["x"]))

    def date(value: str, pick: int) -> schemathesis.Case:
        paths = _date_paths(case.body)
        if paths:
            parent, key = paths[pick % len(paths)]
            parent[key] = value
        else:
            case.body = {**case.body, "client_secret_expires_on": value}
        return mark(case, f"date {value}")
    return st.builds(date, st.sampled_from(EXTREME_DATES), st.integers(0, 1000))


def _walk(value: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key or index) of every value inside a JSON body."""
    stack = [value]
    while stack:
        node = stack.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, inner in pairs:
            yield node, key
            stack.append(inner)


def _string_paths(body: Any) -> list[tuple[Any, Any]]:
    return [(parent, key) for parent, key in _walk(body) if isinstance(parent[key], str)]


def _date_paths(body: Any) -> list[tuple[Any, Any]]:
    return [(parent, key) for parent, key in _walk(body) if key in DATE_FIELDS and isinstance(parent[key], str)]


def _pinned(operation: Any, mode: GenerationMode, pin: dict[str, str]) -> Any:
    return operation.as_strategy(generation_mode=mode, path_parameters=pin)


def _examples(operation: Any, pins: list[dict[str, str]]) -> list[Any]:
    """The description's examples (and the real ones fuzz_document added), sent to the pinned routes."""
    strategies = []
    for strategy in operation.get_strategies_from_examples():
        if pins:
            strategy = st.tuples(strategy, st.sampled_from(pins)).map(lambda pair: _repin(*pair))
        strategies.append(strategy)
    return strategies


def _repin(case: schemathesis.Case, pin: dict[str, str]) -> schemathesis.Case:
    case.path_parameters = {**(case.path_parameters or {}), **pin}
    return case

