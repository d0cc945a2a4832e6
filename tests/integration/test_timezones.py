"""Time zones and all-day events end to end, against the simulator as strict as Graph: what the export sends for
rooms on every continent, and what the feed and free/busy make of all-day Outlook bookings east and west of UTC."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import connect
from tests.integration.test_pull import Room

DAY = (datetime.now(UTC) + timedelta(days=5)).date()


@pytest.fixture
def room(api, simulator, directory, system, services):
    connect(api, simulator, system, "space", "r1", directory.staff)
    response = api.patch(f"/api/systems/{system}/connections/space/r1",
                         json={"sync_resource": directory.room, "two_way": True})
    assert response.status_code == 200, response.text
    room = Room(api, simulator, directory, system, services)
    room.pull()
    return room


def put(api, system, kind, subject, item, occurrences):
    return api.put(f"/api/systems/{system}/connections/{kind}/{subject}/items/{item}",
                   json={"title": "Desk", "patron": {"first_name": "Ada"}, "occurrences": occurrences})


@pytest.mark.parametrize(("zone", "windows", "start_utc"), [
    ("Europe/Dublin", "GMT Standard Time", "2026-07-15T08:00"),  # IST (tzdata's negative DST: winter is the "DST")
    ("America/Toronto", "Eastern Standard Time", "2026-07-15T13:00"),
    ("America/Sao_Paulo", "E. South America Standard Time", "2026-07-15T12:00"),
    ("Africa/Casablanca", "Morocco Standard Time", "2026-07-15T08:00"),
    ("Asia/Kolkata", "India Standard Time", "2026-07-15T03:30"),
    ("Australia/Lord_Howe", "Lord Howe Standard Time", "2026-07-14T22:30"),
    ("Pacific/Chatham", "Chatham Islands Standard Time", "2026-07-14T20:15"),
    ("Antarctica/Troll", "UTC", "2026-07-15T07:00"),  # no Windows zone: sent in UTC
])
def test_export_sends_a_zone_graph_takes_and_the_right_instant(api, simulator, system, staff, zone, windows,
                                                              start_utc):
    response = put(api, system, "user", "u1", "z", [
        {"key": "a", "start": "2026-07-15T09:00:00", "end": "2026-07-15T10:00:00", "time_zone": zone}])
    assert response.status_code == 200, response.text
    (occ,) = response.json()["occurrences"]
    assert occ["state"] == "synced", occ  # on main Graph refused the IANA name (Dublin, Casablanca, Troll...)
    (event,) = simulator.sim.graph.list_events(staff)
    assert event["originalStartTimeZone"] == windows
    assert event["start"]["dateTime"][:16] == start_utc and event["start"]["timeZone"] == "UTC"


def test_export_around_dublins_autumn_change_keeps_both_instants_apart(api, simulator, system, staff):
    # 01:30 happens twice on 2026-10-25 in Dublin; the first (IST) is meant, and is sent in UTC so it stays so.
    response = put(api, system, "user", "u1", "fold", [
        {"key": "a", "start": "2026-10-25T01:30:00", "end": "2026-10-25T03:00:00", "time_zone": "Europe/Dublin"},
        {"key": "b", "start": "2026-10-25T09:00:00", "end": "2026-10-25T10:00:00", "time_zone": "Europe/Dublin"}])
    assert response.status_code == 200, response.text
    events = sorted(simulator.sim.graph.list_events(staff), key=lambda e: e["start"]["dateTime"])
    assert [e["start"]["dateTime"][:16] for e in events] == ["2026-10-25T00:30", "2026-10-25T09:00"]
    assert [e["originalStartTimeZone"] for e in events] == ["UTC", "GMT Standard Time"]


@pytest.mark.parametrize(("zone", "windows", "first", "last"), [
    ("Asia/Tokyo", "Tokyo Standard Time", "2026-07-15", "2026-07-17"),
    ("America/Los_Angeles", "Pacific Standard Time", "2026-07-15", "2026-07-17"),
    ("America/Santiago", "Pacific SA Standard Time", "2026-09-06", "2026-09-07"),  # a day whose midnight is skipped
])
def test_all_day_items_become_all_day_events_on_their_dates(api, simulator, system, staff, zone, windows, first,
                                                            last):
    response = put(api, system, "user", "u1", "holiday", [
        {"key": "a", "all_day": True, "start_date": first, "end_date": last, "time_zone": zone}])
    assert response.status_code == 200, response.text
    (occ,) = response.json()["occurrences"]
    assert occ["state"] == "synced" and occ["all_day"] is True, occ
    assert (occ["start_date"], occ["end_date"]) == (first, last)
    (event,) = simulator.sim.graph.list_events(staff)
    assert event["isAllDay"] is True and event["originalStartTimeZone"] == windows
    assert (event["start"]["dateTime"][:10], event["end"]["dateTime"][:16]) == (first, f"{last}T00:00")


@pytest.mark.parametrize(("occurrence", "field"), [
    ({"all_day": True, "start_date": "2026-07-15", "time_zone": "UTC"}, "occurrences[0].end_date"),
    ({"all_day": True, "start_date": "2026-07-15", "end_date": "2026-07-15", "time_zone": "UTC"},
     "occurrences[0].end_date"),
    ({"all_day": True, "start_date": "15/07/2026", "end_date": "2026-07-16", "time_zone": "UTC"},
     "occurrences[0].start_date"),
    ({"all_day": True, "start": "2026-07-15T00:00:00", "start_date": "2026-07-15", "end_date": "2026-07-16",
      "time_zone": "UTC"}, "occurrences[0].start"),
    ({"all_day": "yes", "start_date": "2026-07-15", "end_date": "2026-07-16", "time_zone": "UTC"},
     "occurrences[0].all_day"),
])
def test_bad_all_day_occurrences_are_refused_naming_the_field(api, system, staff, occurrence, field):
    response = put(api, system, "user", "u1", "bad", [{"key": "a", **occurrence}])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


def outlook_all_day(subject, zone, days):
    end = DAY + timedelta(days=days)
    return {"subject": subject, "isAllDay": True, "start": {"dateTime": f"{DAY}T00:00:00", "timeZone": zone},
            "end": {"dateTime": f"{end}T00:00:00", "timeZone": zone}}


@pytest.mark.parametrize(("zone", "iana", "days"), [
    ("Tokyo Standard Time", "Asia/Tokyo", 1),  # east of UTC: the day starts the day before in UTC
    ("Pacific Standard Time", "America/Los_Angeles", 3),  # west of UTC, and several days
    ("India Standard Time", "Asia/Calcutta", 2),  # CLDR's name for it: tzdata's alias of Asia/Kolkata
])
def test_all_day_outlook_bookings_come_through_with_their_own_dates(room, zone, iana, days):
    made = room.simulator.sim.graph.create_event(room.mailbox, outlook_all_day("Closed", zone, days),
                                                 as_user=room.directory.other_staff)
    assert room.pull()["published"] == 1
    (change,) = room.changes()
    event = change["event"]
    assert change["event_id"] == made["id"] and event["is_all_day"] is True
    assert (event["start_date"], event["end_date"]) == (str(DAY), str(DAY + timedelta(days=days)))
    assert event["time_zone"] == iana and "time_zone_assumed" not in event
    midnight = datetime.combine(DAY, datetime.min.time(), ZoneInfo(iana))
    assert datetime.fromisoformat(event["start"]) == midnight  # the real instant, not midnight UTC


def off_utc(zone):
    """The first day ahead (inside the pull window) when `zone` is not at UTC+0: Troll is only in its summer."""
    return next(day for day in (DAY + timedelta(days=n) for n in range(170))
                if datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).utcoffset())


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Antarctica/Troll"])  # Troll: no Windows zone, sent in UTC
def test_an_all_day_host_booking_is_not_echoed_back(room, api, system, zone):
    day = off_utc(zone)
    response = api.put(f"/api/systems/{system}/connections/space/r1/items/closed", json={
        "patron": {"first_name": "Ada"}, "occurrences": [
            {"key": "a", "all_day": True, "start_date": str(day), "end_date": str(day + timedelta(days=1)),
             "time_zone": zone}]})
    assert response.status_code == 200, response.text
    assert response.json()["occurrences"][0]["state"] == "synced"
    room.pull()
    assert room.changes() == []  # neither an external event nor an "own event changed"


def test_free_busy_places_all_day_events_in_their_own_zone(api, simulator, system, staff):
    simulator.sim.graph.create_event(staff, {**outlook_all_day("Away", "Tokyo Standard Time", 1), "showAs": "oof"})
    window = f"start={DAY - timedelta(days=1)}T00:00:00Z&end={DAY + timedelta(days=2)}T00:00:00Z"
    response = api.get(f"/api/systems/{system}/connections/user/u1/freebusy?{window}")
    assert response.status_code == 200, response.text
    (busy,) = response.json()["busy"]
    # Tokyo's day runs 15:00Z the day before to 15:00Z; read as UTC midnight it would be 9 hours late
    assert busy["start"].startswith(f"{DAY - timedelta(days=1)}T15:00") and busy["status"] == "out_of_office"
    assert busy["end"].startswith(f"{DAY}T15:00")
