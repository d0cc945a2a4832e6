"""Shared set-up for the Graph simulator tests: a directory with a tenant, people and a room, tokens, and a
werkzeug test client over the real Graph handler (no server needed; the HTTPS tests use the real server)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from werkzeug import Request
from werkzeug.test import Client

from simulator.core import Simulator
from simulator.graph.api import make_graph_handler
from simulator.graph.state import GraphState

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
USER_SCOPES = frozenset({"openid", "offline_access", "User.Read", "Calendars.ReadWrite"})
ROOM_SCOPES = USER_SCOPES | {"Calendars.ReadWrite.Shared"}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error(self) -> str | None:
        return (self.body or {}).get("error", {}).get("code") if isinstance(self.body, dict) else None


class Graph:
    """A thin client: `graph.get("/me/events", token)` and friends answer a Reply."""

    def __init__(self, sim: Simulator) -> None:
        handler = make_graph_handler(sim)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            return handler(Request(environ))(environ, start_response)

        self.client = Client(app)
        self.sim = sim

    def call(self, method: str, path: str, token: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> Reply:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        url = path if path.startswith(("/v1.0", "/_control", "http")) else "/v1.0" + path
        resp = self.client.open(url, method=method, data=data, headers=hdrs, query_string=query)
        raw = resp.get_data()
        return Reply(resp.status_code, json.loads(raw) if raw else None, dict(resp.headers))

    def get(self, path: str, token: str | None = None, **kw: Any) -> Reply:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None, body: Any, **kw: Any) -> Reply:
        return self.call("POST", path, token, body, **kw)

    def patch(self, path: str, token: str | None, body: Any, **kw: Any) -> Reply:
        return self.call("PATCH", path, token, body, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any) -> Reply:
        return self.call("DELETE", path, token, **kw)

    def follow(self, url: str, token: str, headers: dict[str, str] | None = None) -> Reply:
        """GET an absolute nextLink/deltaLink produced by the simulator."""
        return self.call("GET", url.replace("http://localhost", ""), token, headers=headers)


@dataclass
class World:
    sim: Simulator
    graph: Graph
    state: GraphState
    tenant_id: str
    alice: Any
    bob: Any
    room: Any
    alice_token: str  # own calendar + the room (grant and Calendars.ReadWrite.Shared)
    bob_token: str  # own calendar only; no grant on the room

    def token(self, user: Any, scopes: frozenset[str] = ROOM_SCOPES, lifetime: float = 3600) -> str:
        return self.sim.tokens.issue(client_id=CLIENT_ID, tenant_id=self.tenant_id, user_id=user.id if user else None,
                                     scopes=scopes, lifetime=lifetime).token


def build_world() -> World:
    sim = Simulator()
    tenant = sim.directory.add_tenant("Contoso", "contoso.onmicrosoft.com")
    alice = sim.directory.add_user(tenant.id, "alice@contoso.onmicrosoft.com", "Alice Archer")
    bob = sim.directory.add_user(tenant.id, "bob@contoso.onmicrosoft.com", "Bob Baker")
    room = sim.directory.add_user(tenant.id, "room1@contoso.onmicrosoft.com", "Room One", kind="room")
    sim.directory.grant_mailbox(alice.id, room.id, "full_access")
    graph = Graph(sim)
    gw = World(sim, graph, sim.graph, tenant.id, alice, bob, room, "", "")
    gw.alice_token = gw.token(alice, ROOM_SCOPES)
    gw.bob_token = gw.token(bob, USER_SCOPES)
    return gw


def event_body(subject: str = "Booking", start: str = "2030-01-07T09:00:00", end: str = "2030-01-07T10:00:00",
               tz: str = "UTC", **extra: Any) -> dict[str, Any]:
    return {"subject": subject, "start": {"dateTime": start, "timeZone": tz},
            "end": {"dateTime": end, "timeZone": tz}, **extra}


def collect(graph: Graph, first: Reply, token: str, headers: dict[str, str] | None = None) -> tuple[list[Any], Reply]:
    """Follow nextLinks to the end; answers every item and the last page."""
    items, page = list(first.body["value"]), first
    while "@odata.nextLink" in page.body:
        page = graph.follow(page.body["@odata.nextLink"], token, headers)
        assert page.status == 200, page.body
        items.extend(page.body["value"])
    return items, page
