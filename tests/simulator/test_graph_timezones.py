"""Time zones as strict as Graph's documentation: Windows names and the documented IANA list only, and all-day
events answered as midnight dates whatever zone is asked for."""

from __future__ import annotations

import pytest

from tests.simulator.test_graph_support import World, build_world, event_body


@pytest.fixture
def gw() -> World:
    return build_world()


@pytest.mark.parametrize("name", ["Europe/Dublin", "America/Toronto", "Antarctica/Troll", "Pacific/Chatham",
                                  "Australia/Lord_Howe", "Coordinated Universal Time", "Greenwich Mean Time",
                                  "tzone://Microsoft/Custom"])
def test_zones_outside_windows_and_the_documented_list_are_refused_as_graph_does(gw: World, name: str) -> None:
    reply = gw.graph.post("/me/events", gw.alice_token, event_body(tz=name))
    assert reply.status == 400
    assert reply.error == "TimeZoneNotSupportedException"
    assert name in reply.body["error"]["message"]


@pytest.mark.parametrize("name", ["GMT Standard Time", "Eastern Standard Time", "India Standard Time",
                                  "Lord Howe Standard Time", "Chatham Islands Standard Time", "Morocco Standard Time",
                                  "E. South America Standard Time", "UTC", "Asia/Kolkata", "America/Sao_Paulo",
                                  "Europe/London", "Pacific/Kiritimati"])
def test_windows_names_and_documented_iana_names_are_taken(gw: World, name: str) -> None:
    reply = gw.graph.post("/me/events", gw.alice_token, event_body(tz=name))
    assert reply.status == 201, reply.body
    assert reply.body["originalStartTimeZone"] == name


def test_casablanca_is_listed_but_refused_on_events(gw: World) -> None:
    reply = gw.graph.post("/me/events", gw.alice_token, event_body(tz="Africa/Casablanca"))
    assert reply.status == 400 and reply.error == "ErrorPropertyValidationFailure"
    moved = gw.graph.post("/me/events", gw.alice_token, event_body(tz="Morocco Standard Time")).body
    patched = gw.graph.patch(f"/me/events/{moved['id']}", gw.alice_token,
                             {"start": {"dateTime": "2030-01-07T08:00:00", "timeZone": "Africa/Casablanca"}})
    assert patched.status == 400 and patched.error == "ErrorPropertyValidationFailure"


def test_all_day_events_are_answered_as_midnight_of_their_dates_in_any_preferred_zone(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    made = g.post("/me/events", t, event_body(start="2030-05-01T00:00:00", end="2030-05-03T00:00:00",
                                              tz="Tokyo Standard Time", isAllDay=True))
    assert made.status == 201, made.body
    for prefer, label in ((None, "UTC"), ('outlook.timezone="Pacific Standard Time"', "Pacific Standard Time")):
        headers = {"Prefer": prefer} if prefer else {}
        got = g.get(f"/me/events/{made.body['id']}", t, headers=headers).body
        assert got["start"] == {"dateTime": "2030-05-01T00:00:00.0000000", "timeZone": label}
        assert got["end"] == {"dateTime": "2030-05-03T00:00:00.0000000", "timeZone": label}
        assert got["originalStartTimeZone"] == "Tokyo Standard Time"
    # calendarView finds it by its real instants (Tokyo's 1 May starts at 15:00Z on 30 April) and answers dates.
    view = g.get("/me/calendarView", t, query={"startDateTime": "2030-04-30T15:30:00Z",
                                              "endDateTime": "2030-04-30T16:00:00Z"}).body["value"]
    assert [e["start"]["dateTime"][:10] for e in view] == ["2030-05-01"]
    # getSchedule converts them: the busy time is the real one.
    sched = g.post("/me/calendar/getSchedule", t, {
        "schedules": [gw.alice.address], "startTime": {"dateTime": "2030-04-30T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2030-05-04T00:00:00", "timeZone": "UTC"}}).body
    (item,) = sched["value"][0]["scheduleItems"]
    assert item["start"]["dateTime"].startswith("2030-04-30T15:00:00")


def test_all_day_events_need_one_zone_for_both_ends(gw: World) -> None:
    body = event_body(start="2030-05-01T00:00:00", end="2030-05-02T00:00:00", tz="UTC", isAllDay=True)
    body["end"]["timeZone"] = "GMT Standard Time"  # midnight in both, yet two zones
    reply = gw.graph.post("/me/events", gw.alice_token, body)
    assert reply.status == 400 and reply.error == "ErrorPropertyValidationFailure"
