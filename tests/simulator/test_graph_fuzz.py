"""Bad input never makes the Graph simulator answer 500 (or hang): property tests over event bodies, PATCHes,
calendarView windows and batch payloads."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.simulator.test_graph_support import World, build_world, event_body

GW: World = build_world()
GW.state.set_throttling(enabled=False)

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12) | st.floats(allow_nan=False)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
date_times = st.fixed_dictionaries({"dateTime": st.sampled_from(
    ["2030-01-07T09:00:00", "2030-01-07T10:00:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59", "bad",
     "2030-01-07T09:00:00.1234567", "2030-01-07T09:00:00+05:00"]) | st.text(max_size=10),
    "timeZone": st.sampled_from(["UTC", "Pacific Standard Time", "Europe/Paris", "nowhere", ""]) | json_values})
fields = {
    "subject": json_values, "start": date_times | json_values, "end": date_times | json_values,
    "isAllDay": json_values, "showAs": st.sampled_from(["busy", "free", "x"]) | json_values,
    "body": json_values, "location": json_values, "categories": json_values, "attendees": json_values,
    "recurrence": json_values | st.just({"pattern": {"type": "daily", "interval": 1},
                                         "range": {"type": "noEnd", "startDate": "2030-01-07"}}),
    "transactionId": json_values, "singleValueExtendedProperties": json_values,
    "reminderMinutesBeforeStart": json_values, "importance": json_values,
}
bodies = st.fixed_dictionaries({}, optional=fields)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_event_create_answers_201_or_400(body: dict[str, Any]) -> None:
    reply = GW.graph.post("/me/events", GW.alice_token, body)
    assert reply.status in (201, 400), (reply.status, reply.body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_event_patch_answers_200_or_400(body: dict[str, Any]) -> None:
    event_id = GW.graph.post("/me/events", GW.alice_token, event_body()).body["id"]
    reply = GW.graph.patch(f"/me/events/{event_id}", GW.alice_token, body)
    assert reply.status in (200, 400), (reply.status, reply.body)


@settings(max_examples=100, deadline=None)
@given(start=st.text(max_size=25) | st.datetimes().map(lambda d: d.isoformat()),
       end=st.text(max_size=25) | st.datetimes().map(lambda d: d.isoformat()),
       top=st.text(max_size=4))
def test_calendar_view_answers_200_or_400(start: str, end: str, top: str) -> None:
    reply = GW.graph.get("/me/calendarView", GW.alice_token,
                         query={"startDateTime": start, "endDateTime": end, "$top": top})
    assert reply.status in (200, 400), (reply.status, reply.body)


@settings(max_examples=100, deadline=None)
@given(payload=json_values)
def test_batch_payloads_answer_200_or_400(payload: Any) -> None:
    reply = GW.graph.post("/$batch", GW.alice_token, payload if isinstance(payload, dict) else {"requests": payload})
    assert reply.status in (200, 400), (reply.status, reply.body)
