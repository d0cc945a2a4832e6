"""Free/busy of a user's free/busy calendar, recurring events included, through the API."""

import pytest

WINDOW = "start=2027-02-01T00:00:00Z&end=2027-02-15T00:00:00Z"


def event(subject, start, end, show_as="busy", **extra):
    return {"subject": subject, "showAs": show_as, "start": {"dateTime": start, "timeZone": "UTC"},
            "end": {"dateTime": end, "timeZone": "UTC"}, **extra}


def test_busy_tentative_oof_and_every_occurrence_of_a_series(api, simulator, system, staff):
    graph = simulator.sim.graph
    graph.create_event(staff, event("Meeting", "2027-02-02T10:00:00", "2027-02-02T11:00:00"))
    graph.create_event(staff, event("Maybe", "2027-02-03T10:00:00", "2027-02-03T11:00:00", "tentative"))
    graph.create_event(staff, event("Holiday", "2027-02-04T00:00:00", "2027-02-05T00:00:00", "oof"))
    graph.create_event(staff, event("Lunch (free)", "2027-02-02T12:00:00", "2027-02-02T13:00:00", "free"))
    graph.create_event(staff, event("Outside", "2027-03-01T10:00:00", "2027-03-01T11:00:00"))
    graph.create_event(staff, event("Weekly", "2027-01-27T15:00:00", "2027-01-27T16:00:00", recurrence={
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["wednesday"]},
        "range": {"type": "noEnd", "startDate": "2027-01-27"}}))
    response = api.get(f"/api/systems/{system}/connections/user/u1/freebusy?{WINDOW}")
    assert response.status_code == 200, response.text
    busy = [(i["start"][:16], i["status"]) for i in response.json()["busy"]]
    assert busy == [
        ("2027-02-02T10:00", "busy"),
        ("2027-02-03T10:00", "tentative"),
        ("2027-02-03T15:00", "busy"),  # the weekly series, every Wednesday in the window
        ("2027-02-04T00:00", "out_of_office"),
        ("2027-02-10T15:00", "busy"),
    ]


def test_only_the_chosen_free_busy_calendar_counts(api, simulator, system, staff):
    graph = simulator.sim.graph
    shifts = graph.create_calendar(staff, "Shifts")
    graph.create_event(staff, event("Default calendar", "2027-02-02T10:00:00", "2027-02-02T11:00:00"))
    graph.create_event(staff, event("Shift", "2027-02-02T14:00:00", "2027-02-02T18:00:00"),
                       calendar_id=shifts["id"])
    api.patch(f"/api/systems/{system}/connections/user/u1", json={"freebusy_calendar_id": shifts["id"]})
    body = api.get(f"/api/systems/{system}/connections/user/u1/freebusy?{WINDOW}").json()
    assert [i["start"][:16] for i in body["busy"]] == ["2027-02-02T14:00"]
    assert body["calendar_id"] == shifts["id"]


def test_many_events_are_read_across_pages(api, simulator, system, staff):
    for day in range(1, 15):
        for hour in (8, 10, 12, 14, 16):
            simulator.sim.graph.create_event(staff, event("x", f"2027-02-{day:02d}T{hour:02d}:00:00",
                                                          f"2027-02-{day:02d}T{hour:02d}:30:00"))
    body = api.get(f"/api/systems/{system}/connections/user/u1/freebusy?{WINDOW}").json()
    assert len(body["busy"]) == 70


@pytest.mark.parametrize(("query", "field"), [
    ("start=2027-02-01T00:00:00Z", "end"),
    ("end=2027-02-01T00:00:00Z", "start"),
    ("start=2027-02-10T00:00:00Z&end=2027-02-01T00:00:00Z", "end"),
    ("start=2027-01-01T00:00:00Z&end=2027-03-15T00:00:00Z", "end"),
    ("start=yesterday&end=2027-02-01T00:00:00Z", "start"),
])
def test_window_limits_are_enforced_with_a_clear_error(api, system, staff, query, field):
    response = api.get(f"/api/systems/{system}/connections/user/u1/freebusy?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field
