"""calendarView delta: initial pages, incremental rounds, fixed window, removals, series, 410 and cost."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.test_graph_support import (
    Graph,
    Reply,
    World,
    build_world,
    event_body,
)

ROOM = "/users/room1@contoso.onmicrosoft.com"
WINDOW = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-02-01T00:00:00Z"}


@pytest.fixture
def gw() -> World:
    return build_world()


def round_trip(g: Graph, first: Reply, token: str, headers: dict[str, str] | None = None) -> tuple[list[Any], str]:
    """Follow a delta round to its deltaLink; answers the items and the deltaLink."""
    assert first.status == 200, first.body
    items, page = list(first.body["value"]), first
    while "@odata.nextLink" in page.body:
        assert "$skiptoken=" in page.body["@odata.nextLink"]
        page = g.follow(page.body["@odata.nextLink"], token, headers)
        assert page.status == 200, page.body
        items.extend(page.body["value"])
    assert "$deltatoken=" in page.body["@odata.deltaLink"]
    return items, page.body["@odata.deltaLink"]


def removed_ids(items: list[Any]) -> set[str]:
    return {i["id"] for i in items if "@removed" in i}


def full_ids(items: list[Any]) -> set[str]:
    return {i["id"] for i in items if "@removed" not in i}


def test_initial_round_pages_then_incremental_changes(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    cal_id = g.get(f"{ROOM}/calendar", t).body["id"]
    ids = [g.post(f"{ROOM}/events", t, event_body(f"b{d}", f"2030-01-{d:02d}T09:00:00",
                                                   f"2030-01-{d:02d}T10:00:00")).body["id"] for d in range(1, 8)]
    outside = g.post(f"{ROOM}/events", t, event_body("march", "2030-03-01T09:00:00", "2030-03-01T10:00:00")).body
    prefer = {"Prefer": "odata.maxpagesize=3"}
    first = g.get(f"{ROOM}/calendars/{cal_id}/calendarView/delta", t, query=WINDOW, headers=prefer)
    assert len(first.body["value"]) == 3 and first.headers["Preference-Applied"] == "odata.maxpagesize=3"
    items, delta_link = round_trip(g, first, t, prefer)
    assert full_ids(items) == set(ids) and outside["id"] not in full_ids(items)
    assert all(i["@odata.type"] == "#microsoft.graph.event" for i in items)

    # Nothing changed: an empty round.
    quiet, delta_link = round_trip(g, g.follow(delta_link, t), t)
    assert quiet == []

    created = g.post(f"{ROOM}/events", t, event_body("new", "2030-01-20T09:00:00", "2030-01-20T10:00:00")).body
    g.patch(f"{ROOM}/events/{ids[0]}", t, {"subject": "b1 renamed"})
    g.delete(f"{ROOM}/events/{ids[1]}", t)
    gw.state.update_event(ids[2], {"start": {"dateTime": "2030-02-10T09:00:00", "timeZone": "UTC"},
                                      "end": {"dateTime": "2030-02-10T10:00:00", "timeZone": "UTC"}},
                             as_user=gw.alice.address)  # moved out of the window "in Outlook"
    g.post(f"{ROOM}/events", t, event_body("april", "2030-04-01T09:00:00", "2030-04-01T10:00:00"))  # outside
    changes, delta_link = round_trip(g, g.follow(delta_link, t), t)
    assert full_ids(changes) == {created["id"], ids[0]}
    assert removed_ids(changes) == {ids[1], ids[2]}
    renamed = next(i for i in changes if i["id"] == ids[0])
    assert renamed["subject"] == "b1 renamed" and renamed["start"]["timeZone"] == "UTC"
    gone = next(i for i in changes if i["id"] == ids[1])
    assert gone == {"@odata.type": "#microsoft.graph.event", "id": ids[1], "@removed": {"reason": "deleted"}}

    # Moving it back into the window brings it back as a full event.
    gw.state.update_event(ids[2], {"start": {"dateTime": "2030-01-10T09:00:00", "timeZone": "UTC"},
                                      "end": {"dateTime": "2030-01-10T10:00:00", "timeZone": "UTC"}})
    back, _ = round_trip(g, g.follow(delta_link, t), t)
    assert full_ids(back) == {ids[2]} and removed_ids(back) == set()


def test_window_is_fixed_by_the_first_request(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    _, link = round_trip(g, g.get(f"{ROOM}/calendarView/delta", t, query=WINDOW), t)
    g.post(f"{ROOM}/events", t, event_body("feb", "2030-02-15T09:00:00", "2030-02-15T10:00:00"))
    # Parameters on a later request do not move the window: only the token counts.
    wider = g.follow(link + "&startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-12-31T00:00:00Z", t)
    assert wider.status == 200 and wider.body["value"] == []


def test_delta_refuses_select_and_filter_and_needs_a_window(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    for param in ("$select", "$filter", "$expand", "$orderby"):
        refused = g.get(f"{ROOM}/calendarView/delta", t, query={**WINDOW, param: "subject"})
        assert refused.status == 400, param
    assert g.get(f"{ROOM}/calendarView/delta", t).error == "ErrorInvalidParameter"
    assert g.get(f"{ROOM}/calendarView/delta", t, query={"$deltatoken": "@@@not-a-token"}).status == 400


def test_series_appear_as_occurrences_and_edits_show_up(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    series = g.post(f"{ROOM}/events", t, event_body(
        "Weekly", "2030-01-07T09:00:00", "2030-01-07T10:00:00", "GMT Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    "range": {"type": "noEnd", "startDate": "2030-01-07"}})).body
    items, link = round_trip(g, g.get(f"{ROOM}/calendarView/delta", t, query=WINDOW), t)
    assert len(items) == 4 and {i["type"] for i in items} == {"occurrence"}
    assert {i["seriesMasterId"] for i in items} == {series["id"]}
    occ = sorted(items, key=lambda i: i["start"]["dateTime"])
    g.delete(f"{ROOM}/events/{occ[1]['id']}", t)  # cancel one date
    g.patch(f"{ROOM}/events/{occ[2]['id']}", t, {"subject": "Weekly (special)"})
    changes, link = round_trip(g, g.get(link.replace("http://localhost/v1.0", ""), t), t)
    assert removed_ids(changes) == {occ[1]["id"]}
    assert {i["id"]: i["type"] for i in changes if "@removed" not in i}[occ[2]["id"]] == "exception"
    # Shortening the series removes the later occurrences.
    g.patch(f"{ROOM}/events/{series['id']}", t, {"recurrence": {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
        "range": {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 2}}})
    shortened, _ = round_trip(g, g.follow(link, t), t)
    assert removed_ids(shortened) == {occ[2]["id"], occ[3]["id"]}
    assert full_ids(shortened) == {occ[0]["id"], occ[1]["id"]}  # the cancelled date is back after the reset


def test_invalidated_tokens_answer_410_with_a_restart_location(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    g.post(f"{ROOM}/events", t, event_body())
    first = g.get(f"{ROOM}/calendarView/delta", t, query=WINDOW, headers={"Prefer": "odata.maxpagesize=1"})
    _, link = round_trip(g, first, t)
    skip = first.body.get("@odata.nextLink")
    assert gw.state.invalidate_delta(gw.room.address) == 1
    gone = g.follow(link, t)
    assert (gone.status, gone.error) == (410, "syncStateNotFound")
    restart = g.follow(gone.headers["Location"], t)
    assert restart.status == 200 and len(restart.body["value"]) == 1
    if skip:
        assert g.follow(skip, t).status == 410
    # Control route, all mailboxes.
    _, link = round_trip(g, restart, t)
    assert g.post("/_control/graph/delta/invalidate", None, {}).body["calendars"] >= 1
    assert g.follow(link, t).status == 410


def test_prefer_timezone_applies_to_delta(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    g.post(f"{ROOM}/events", t, event_body(start="2030-01-10T09:00:00", end="2030-01-10T10:00:00"))
    got = g.get(f"{ROOM}/calendarView/delta", t, query=WINDOW,
                headers={"Prefer": 'outlook.timezone="Tokyo Standard Time"'}).body["value"]
    assert got[0]["start"] == {"dateTime": "2030-01-10T18:00:00.0000000", "timeZone": "Tokyo Standard Time"}


def test_incremental_cost_follows_the_changes_not_the_calendar(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    for i in range(300):
        day, hour = 1 + i % 28, i % 24
        state.create_event(gw.room.address, event_body(f"e{i}", f"2030-01-{day:02d}T{hour:02d}:00:00",
                                                          f"2030-01-{day:02d}T{hour:02d}:30:00"))
    prefer = {"Prefer": "odata.maxpagesize=100"}
    items, link = round_trip(g, g.get(f"{ROOM}/calendarView/delta", t, query=WINDOW, headers=prefer), t, prefer)
    assert len(items) == 300
    one = items[17]["id"]
    state.update_event(one, {"subject": "changed"})
    before = state.counter_snapshot()["counts"].get("graph.delta.items", 0)
    changes, _ = round_trip(g, g.follow(link, t, prefer), t, prefer)
    assert [c["id"] for c in changes] == [one]
    assert state.counter_snapshot()["counts"]["graph.delta.items"] - before == 1


def test_writes_between_pages_neither_skip_nor_lose_items(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    ids = [g.post(f"{ROOM}/events", t, event_body(f"b{d}", f"2030-01-{d:02d}T09:00:00",
                                                   f"2030-01-{d:02d}T10:00:00")).body["id"] for d in range(1, 7)]
    prefer = {"Prefer": "odata.maxpagesize=2"}
    first = g.get(f"{ROOM}/calendarView/delta", t, query=WINDOW, headers=prefer)
    seen = {i["id"] for i in first.body["value"]}
    for victim in seen:  # delete what was already returned: later pages must not shift past anything
        g.delete(f"{ROOM}/events/{victim}", t)
    rest, link = round_trip(g, g.follow(first.body["@odata.nextLink"], t, prefer), t, prefer)
    assert seen | full_ids(rest) == set(ids)
    nxt, _ = round_trip(g, g.follow(link, t), t)
    assert removed_ids(nxt) == seen
