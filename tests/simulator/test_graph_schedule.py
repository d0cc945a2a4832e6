"""getSchedule: availability view, recurrence, privacy of details, per-schedule errors and the documented limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.test_graph_support import (
    World,
    build_world,
    event_body,
)

ROOM = "room1@contoso.onmicrosoft.com"


@pytest.fixture
def gw() -> World:
    return build_world()


def request(schedules: list[str], start: str = "2030-01-07T08:00:00", end: str = "2030-01-07T12:00:00",
            tz: str = "UTC", interval: Any = 60) -> dict[str, Any]:
    body: dict[str, Any] = {"schedules": schedules, "startTime": {"dateTime": start, "timeZone": tz},
                            "endTime": {"dateTime": end, "timeZone": tz}}
    if interval is not None:
        body["availabilityViewInterval"] = interval
    return body


def test_availability_view_and_items(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.create_event(ROOM, event_body("Busy booking", "2030-01-07T09:00:00", "2030-01-07T10:00:00",
                                        location={"displayName": "Room One"}), as_user=gw.bob.address)
    state.create_event(ROOM, event_body("Maybe", "2030-01-07T10:30:00", "2030-01-07T11:00:00", showAs="tentative"))
    state.create_event(ROOM, event_body("Free", "2030-01-07T11:00:00", "2030-01-07T12:00:00", showAs="free"))
    state.create_event(gw.bob.address, event_body("Private", "2030-01-07T08:00:00", "2030-01-07T08:30:00",
                                                     sensitivity="private", showAs="oof"))
    reply = g.post("/me/calendar/getSchedule", t, request([ROOM, gw.bob.address]))
    assert reply.status == 200
    room, bob = reply.body["value"]
    assert room["scheduleId"] == ROOM and room["availabilityView"] == "0210"
    assert [(i["status"], i["subject"]) for i in room["scheduleItems"]] == [("busy", "Busy booking"),
                                                                            ("tentative", "Maybe")]
    assert room["scheduleItems"][0]["location"] == "Room One"
    assert room["scheduleItems"][0]["start"] == {"dateTime": "2030-01-07T09:00:00.0000000", "timeZone": "UTC"}
    # Alice has no grant on Bob's calendar: free/busy only, no subject.
    assert bob["availabilityView"] == "3000"
    assert bob["scheduleItems"][0]["isPrivate"] is True and "subject" not in bob["scheduleItems"][0]


def test_recurrence_and_prefer_time_zone(gw: World) -> None:
    g, t, state = gw.graph, gw.alice_token, gw.state
    state.create_event(ROOM, event_body("Daily", "2030-01-06T09:00:00", "2030-01-06T10:00:00", recurrence={
        "pattern": {"type": "daily", "interval": 1}, "range": {"type": "noEnd", "startDate": "2030-01-06"}}))
    reply = g.post(f"/users/{ROOM}/calendar/getSchedule", t,
                   request([ROOM], "2030-01-07T00:00:00", "2030-01-09T00:00:00", interval=1440),
                   headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'})
    value = reply.body["value"][0]
    assert value["availabilityView"] == "22"
    assert [i["start"] for i in value["scheduleItems"]] == [
        {"dateTime": "2030-01-07T01:00:00.0000000", "timeZone": "Pacific Standard Time"},
        {"dateTime": "2030-01-08T01:00:00.0000000", "timeZone": "Pacific Standard Time"}]


def test_unknown_schedules_come_back_with_an_error_not_as_free(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    value = g.post("/me/calendar/getSchedule", t, request(["ghost@contoso.onmicrosoft.com"])).body["value"]
    assert value[0]["scheduleId"] == "ghost@contoso.onmicrosoft.com"
    assert value[0]["error"]["responseCode"] == "ErrorMailRecipientNotFound"


def test_defaults_and_pascal_case_body(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    body = {"Schedules": [ROOM], "StartTime": {"dateTime": "2030-01-07T08:00:00", "timeZone": "UTC"},
            "EndTime": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"}}
    value = g.post("/me/calendar/getSchedule", t, body).body["value"][0]
    assert value["availabilityView"] == "0000"  # 30-minute slots by default


@pytest.mark.parametrize(("body", "why"), [
    (request([f"u{i}@contoso.onmicrosoft.com" for i in range(21)]), "more than 20 schedules"),
    (request([ROOM], "2030-01-01T00:00:00", "2030-03-04T00:00:00"), "62 days"),
    (request([ROOM], interval=4), "interval below 5"),
    (request([ROOM], interval=1441), "interval above 1440"),
    (request([ROOM], "2030-01-07T12:00:00", "2030-01-07T08:00:00"), "end before start"),
    (request([]), "no schedules"),
])
def test_limits(gw: World, body: dict[str, Any], why: str) -> None:
    reply = gw.graph.post("/me/calendar/getSchedule", gw.alice_token, body)
    assert reply.status == 400, why
    assert reply.error == "ErrorInvalidParameter"


def test_just_under_62_days_is_allowed(gw: World) -> None:
    reply = gw.graph.post("/me/calendar/getSchedule", gw.alice_token,
                             request([ROOM], "2030-01-01T00:00:00", "2030-03-03T23:00:00", interval=1440))
    assert reply.status == 200 and len(reply.body["value"][0]["availabilityView"]) == 62
