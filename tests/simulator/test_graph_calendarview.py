"""calendarView: window required, overlap rule, paging, recurrence expansion and occurrence edits."""

from __future__ import annotations

import pytest

from tests.simulator.test_graph_support import (
    World,
    build_world,
    collect,
    event_body,
)

ROOM = "/users/room1@contoso.onmicrosoft.com"
JAN = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-02-01T00:00:00Z"}


@pytest.fixture
def gw() -> World:
    return build_world()


def test_window_is_required(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    missing = g.get("/me/calendarView", t)
    assert (missing.status, missing.error) == (400, "ErrorInvalidParameter")
    assert "StartDateTime and EndDateTime" in missing.body["error"]["message"]
    assert g.get("/me/calendarView", t, query={"startDateTime": "2030-01-01T00:00:00"}).status == 400
    assert g.get("/me/calendarView", t, query={"startDateTime": "garbage", "endDateTime": "x"}).status == 400


def test_only_overlapping_events_in_start_order(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    for subject, start, end in [
        ("before", "2029-12-31T10:00:00", "2029-12-31T11:00:00"),
        ("straddles start", "2029-12-31T23:00:00", "2030-01-01T01:00:00"),
        ("inside", "2030-01-15T10:00:00", "2030-01-15T11:00:00"),
        ("ends at window start", "2029-12-31T22:00:00", "2030-01-01T00:00:00"),
        ("starts at window end", "2030-02-01T00:00:00", "2030-02-01T01:00:00"),
        ("early inside", "2030-01-02T10:00:00", "2030-01-02T11:00:00"),
    ]:
        g.post("/me/events", t, event_body(subject, start, end))
    view = g.get("/me/calendarView", t, query=JAN).body["value"]
    assert [e["subject"] for e in view] == ["straddles start", "early inside", "inside"]
    # An offset in the bounds is honoured: 2030-01-15T12:00+02:00 is 10:00Z.
    narrow = g.get("/me/calendarView", t, query={"startDateTime": "2030-01-15T12:00:00+02:00",
                                                 "endDateTime": "2030-01-15T12:30:00+02:00"}).body["value"]
    assert [e["subject"] for e in narrow] == ["inside"]


def test_paging_with_top_and_maxpagesize(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    for day in range(1, 26):
        g.post(f"{ROOM}/events", t, event_body(f"b{day:02d}", f"2030-01-{day:02d}T09:00:00",
                                                f"2030-01-{day:02d}T10:00:00"))
    first = g.get(f"{ROOM}/calendarView", t, query=JAN)
    assert len(first.body["value"]) == 10 and "@odata.nextLink" in first.body  # Graph's default page size
    everything, _ = collect(g, first, t)
    assert [e["subject"] for e in everything] == [f"b{d:02d}" for d in range(1, 26)]

    top = g.get(f"{ROOM}/calendarView", t, query={**JAN, "$top": "7"})
    assert len(top.body["value"]) == 7 and "$skip=7" in top.body["@odata.nextLink"]
    assert len(collect(g, top, t)[0]) == 25

    prefer = {"Prefer": "odata.maxpagesize=12"}
    big = g.get(f"{ROOM}/calendarView", t, query=JAN, headers=prefer)
    assert len(big.body["value"]) == 12
    items, last = collect(g, big, t, prefer)
    assert len(items) == 25 and len(last.body["value"]) == 1
    assert len({e["id"] for e in items}) == 25


def test_recurring_series_expand_into_occurrences_with_stable_ids(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    series = g.post(f"{ROOM}/events", t, event_body(
        "Daily standup", "2030-01-06T09:00:00", "2030-01-06T09:15:00", "W. Europe Standard Time",
        recurrence={"pattern": {"type": "daily", "interval": 2},
                    "range": {"type": "endDate", "startDate": "2030-01-06", "endDate": "2030-01-14"}},
    )).body
    window = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-01-31T00:00:00Z"}
    occurrences = g.get(f"{ROOM}/calendarView", t, query=window).body["value"]
    assert [o["start"]["dateTime"][:10] for o in occurrences] == [
        "2030-01-06", "2030-01-08", "2030-01-10", "2030-01-12", "2030-01-14"]
    assert all(o["type"] == "occurrence" and o["seriesMasterId"] == series["id"] for o in occurrences)
    again = g.get(f"{ROOM}/calendarView", t, query=window).body["value"]
    assert [o["id"] for o in occurrences] == [o["id"] for o in again]
    assert len({o["id"] for o in occurrences}) == 5

    one = g.get(f"{ROOM}/events/{occurrences[1]['id']}", t).body
    assert one["type"] == "occurrence" and one["start"]["dateTime"].startswith("2030-01-08T08:00")

    # Edit one occurrence (it becomes an exception) and delete another.
    moved = g.patch(f"{ROOM}/events/{occurrences[2]['id']}", t, {
        "subject": "Standup (moved)", "start": {"dateTime": "2030-01-10T15:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-10T15:15:00", "timeZone": "UTC"}})
    assert moved.status == 200 and moved.body["type"] == "exception"
    assert g.delete(f"{ROOM}/events/{occurrences[3]['id']}", t).status == 204
    assert g.get(f"{ROOM}/events/{occurrences[3]['id']}", t).status == 404
    after = g.get(f"{ROOM}/calendarView", t, query=window).body["value"]
    assert [(o["subject"], o["type"]) for o in after] == [
        ("Daily standup", "occurrence"), ("Daily standup", "occurrence"), ("Standup (moved)", "exception"),
        ("Daily standup", "occurrence")]
    assert after[2]["id"] == occurrences[2]["id"]
    instances = g.get(f"{ROOM}/events/{series['id']}/instances", t, query=window).body["value"]
    assert [i["id"] for i in instances] == [o["id"] for o in after]

    # Deleting the master removes the whole series.
    assert g.delete(f"{ROOM}/events/{series['id']}", t).status == 204
    assert g.get(f"{ROOM}/calendarView", t, query=window).body["value"] == []


def test_patterns_monthly_yearly_and_no_end(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    g.post("/me/events", t, event_body("Monthly 31st", "2030-01-31T12:00:00", "2030-01-31T13:00:00", recurrence={
        "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
        "range": {"type": "noEnd", "startDate": "2030-01-31"}}))
    g.post("/me/events", t, event_body("Last Friday", "2030-01-25T12:00:00", "2030-01-25T13:00:00", recurrence={
        "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
        "range": {"type": "numbered", "startDate": "2030-01-25", "numberOfOccurrences": 3}}))
    g.post("/me/events", t, event_body("Anniversary", "2030-03-01T08:00:00", "2030-03-01T09:00:00", recurrence={
        "pattern": {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 1, "month": 3},
        "range": {"type": "noEnd", "startDate": "2030-03-01"}}))
    view = g.get("/me/calendarView", t, headers={"Prefer": "odata.maxpagesize=100"},
                 query={"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-05-01T00:00:00Z"}).body["value"]
    days = [(e["subject"], e["start"]["dateTime"][:10]) for e in view]
    assert days == sorted(days, key=lambda d: d[1]) == [
        ("Last Friday", "2030-01-25"), ("Monthly 31st", "2030-01-31"), ("Last Friday", "2030-02-22"),
        ("Monthly 31st", "2030-02-28"), ("Anniversary", "2030-03-01"), ("Last Friday", "2030-03-29"),
        ("Monthly 31st", "2030-03-31"), ("Monthly 31st", "2030-04-30")]
    # A no-end series far in the future is found without walking every day since its start.
    far = g.get("/me/calendarView", t, query={"startDateTime": "2130-03-01T00:00:00Z",
                                              "endDateTime": "2130-03-02T00:00:00Z"}).body["value"]
    assert [e["subject"] for e in far] == ["Anniversary"]


def test_invalid_recurrence_is_refused(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    bad = g.post("/me/events", t, event_body(recurrence={"pattern": {"type": "weekly", "interval": 1},
                                                         "range": {"type": "noEnd", "startDate": "2030-01-07"}}))
    assert bad.status == 400
