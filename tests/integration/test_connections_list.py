"""GET /systems/{system}/connections: the system's connections with their health, a page at a time (the admin
console's list, and any host that wants one)."""

from __future__ import annotations

from tests.helpers import connect


def listing(api, system, **query):
    response = api.get(f"/api/systems/{system}/connections", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def test_pages_through_spaces_then_users_with_their_health(api, simulator, directory, system):
    for kind, subject in (("user", "u2"), ("space", "r1"), ("user", "u1")):
        connect(api, simulator, system, kind, subject, directory.staff)
    first = listing(api, system, limit="2")
    assert [(c["kind"], c["id"]) for c in first["connections"]] == [("space", "r1"), ("user", "u1")]
    assert first["more"] is True and first["next_cursor"] == "user:u1"
    second = listing(api, system, limit="2", cursor=first["next_cursor"])
    assert [(c["kind"], c["id"]) for c in second["connections"]] == [("user", "u2")]
    assert second == {**second, "more": False, "next_cursor": None}
    everything = listing(api, system)["connections"]
    assert len(everything) == 3
    assert all(c["account"]["username"] == directory.staff and c["status"] == "connected"
               and c["last_error"] is None and c["authorized_at"] for c in everything)
    assert everything[1:] == [api.get(f"/api/systems/{system}/connections/user/{u}").json() for u in ("u1", "u2")]
    assert {c["id"] for c in listing(api, system, kind="user")["connections"]} == {"u1", "u2"}
    assert [c["id"] for c in listing(api, system, kind="space")["connections"]] == ["r1"]


def test_an_empty_system_and_bad_paging_are_answered_clearly(api, system):
    assert listing(api, system) == {"system": system, "connections": [], "next_cursor": None, "more": False}
    for query, field in (({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "1e3"}, "limit"),
                         ({"kind": "room"}, "kind"), ({"cursor": "room:r1"}, "cursor"),
                         ({"cursor": "user:bad id"}, "cursor")):
        refused = api.get(f"/api/systems/{system}/connections", params=query)
        assert refused.status_code == 400, (query, refused.text)
        assert refused.json()["error"]["details"]["field"] == field
