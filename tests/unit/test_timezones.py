"""What the product sends Graph for a zone, and how it reads the times Graph answers with."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.timezones import event_times, graph_times, resolve, windows_name
from simulator.graph.timezones import known_zone


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


# One zone per continent and the awkward ones: negative DST (Dublin), half-hour DST (Lord Howe), +05:30, +12:45,
# Morocco (listed by Graph yet refused), and a zone CLDR maps to no Windows zone at all (Troll).
@pytest.mark.parametrize(("iana", "windows"), [
    ("Europe/Dublin", "GMT Standard Time"),
    ("America/Toronto", "Eastern Standard Time"),
    ("America/Sao_Paulo", "E. South America Standard Time"),
    ("Asia/Kolkata", "India Standard Time"),
    ("Asia/Calcutta", "India Standard Time"),  # the old name, still in tzdata
    ("Australia/Lord_Howe", "Lord Howe Standard Time"),
    ("Africa/Casablanca", "Morocco Standard Time"),
    ("Africa/Nairobi", "E. Africa Standard Time"),
    ("Pacific/Chatham", "Chatham Islands Standard Time"),
    ("UTC", "UTC"),
    ("Etc/UTC", "UTC"),
])
def test_a_zone_goes_out_as_its_windows_name_at_the_same_wall_time(iana: str, windows: str) -> None:
    start, end = graph_times(local("2026-07-15T09:00:00"), local("2026-07-15T10:30:00"), iana)
    assert start == {"dateTime": "2026-07-15T09:00:00", "timeZone": windows}
    assert end == {"dateTime": "2026-07-15T10:30:00", "timeZone": windows}
    assert known_zone(windows)  # and the simulator, strict like Graph, takes it


def test_a_zone_without_a_windows_name_goes_out_in_utc() -> None:
    # Antarctica/Troll is UTC+2 in its summer (March to October), UTC+0 otherwise; CLDR has no Windows zone for it.
    assert windows_name("Antarctica/Troll") is None
    start, end = graph_times(local("2026-07-15T09:00:00"), local("2026-07-15T10:00:00"), "Antarctica/Troll")
    assert start == {"dateTime": "2026-07-15T07:00:00", "timeZone": "UTC"}
    assert end == {"dateTime": "2026-07-15T08:00:00", "timeZone": "UTC"}
    assert not known_zone("Antarctica/Troll")  # what main sent: Graph refuses it


@pytest.mark.parametrize(("iana", "wall", "utc"), [
    ("Europe/Dublin", "2026-10-25T01:30:00", "2026-10-25T00:30:00"),  # IST -> GMT: 01:00-02:00 happens twice
    ("America/Toronto", "2026-11-01T01:30:00", "2026-11-01T05:30:00"),
    ("Australia/Lord_Howe", "2026-04-05T01:45:00", "2026-04-04T14:45:00"),  # +11 -> +10:30 at 02:00
    ("Pacific/Chatham", "2026-04-05T02:50:00", "2026-04-04T13:05:00"),  # +13:45 -> +12:45 at 03:45
])
def test_a_wall_time_that_happens_twice_goes_out_as_the_first_instant_in_utc(iana: str, wall: str, utc: str) -> None:
    start, _ = graph_times(local(wall), local(wall).replace(hour=5), iana)
    assert start == {"dateTime": utc, "timeZone": "UTC"}
    assert local(wall).replace(tzinfo=ZoneInfo(iana)).astimezone(UTC) == local(utc).replace(tzinfo=UTC)


@pytest.mark.parametrize(("iana", "wall", "utc"), [
    ("Europe/Dublin", "2026-03-29T02:00:00", "2026-03-29T01:00:00"),  # just after the skipped hour
    ("Europe/Dublin", "2026-01-15T09:00:00", "2026-01-15T09:00:00"),  # winter: tzdata's negative DST, UTC+0
    ("Europe/Dublin", "2026-07-15T09:00:00", "2026-07-15T08:00:00"),  # summer: IST, UTC+1
    ("Australia/Lord_Howe", "2026-10-04T02:30:00", "2026-10-03T15:30:00"),  # +10:30 -> +11 skips 02:00-02:30
    ("America/Toronto", "2026-03-08T03:00:00", "2026-03-08T07:00:00"),
])
def test_times_beside_a_dst_change_keep_the_windows_name_and_mean_the_same_instant(iana: str, wall: str,
                                                                                  utc: str) -> None:
    start, _ = graph_times(local(wall), local(wall).replace(hour=23), iana)
    assert start["timeZone"] == windows_name(iana)
    windows_zone = resolve(start["timeZone"])
    assert windows_zone is not None
    assert local(wall).replace(tzinfo=windows_zone).astimezone(UTC) == local(utc).replace(tzinfo=UTC)


def test_all_day_goes_out_as_midnight_in_the_windows_zone_or_utc() -> None:
    start, end = graph_times(local("2026-07-15T00:00:00"), local("2026-07-17T00:00:00"), "Asia/Tokyo",
                             all_day=True)
    assert start == {"dateTime": "2026-07-15T00:00:00", "timeZone": "Tokyo Standard Time"}
    assert end == {"dateTime": "2026-07-17T00:00:00", "timeZone": "Tokyo Standard Time"}
    troll, _ = graph_times(local("2026-07-15T00:00:00"), local("2026-07-16T00:00:00"), "Antarctica/Troll",
                           all_day=True)
    assert troll == {"dateTime": "2026-07-15T00:00:00", "timeZone": "UTC"}


@pytest.mark.parametrize(("name", "key"), [
    ("Tokyo Standard Time", "Asia/Tokyo"), ("tokyo standard time", "Asia/Tokyo"), ("Asia/Tokyo", "Asia/Tokyo"),
    ("UTC", "UTC"), ("Eastern Standard Time", "America/New_York"), ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("tzone://Microsoft/Custom", None), ("Customized Time Zone", None), ("", None), ("Europe", None),
])
def test_zone_names_graph_answers_with_resolve_or_are_unknown(name: str, key: str | None) -> None:
    found = resolve(name)
    assert (found.key if found else None) == key


def test_timed_events_are_read_in_the_zone_their_times_are_labelled_with() -> None:
    event = {"start": {"dateTime": "2026-07-15T09:00:00.0000000", "timeZone": "Tokyo Standard Time"},
             "end": {"dateTime": "2026-07-15T10:00:00.0000000", "timeZone": "Asia/Tokyo"},
             "originalStartTimeZone": "Tokyo Standard Time"}
    times = event_times(event)
    assert times is not None and not times.all_day
    assert times.start_utc == datetime(2026, 7, 15, 0, tzinfo=UTC)
    assert times.end_utc == datetime(2026, 7, 15, 1, tzinfo=UTC)
    assert times.time_zone == "Asia/Tokyo"


@pytest.mark.parametrize(("zone", "start_utc"), [
    ("Tokyo Standard Time", datetime(2026, 7, 14, 15, tzinfo=UTC)),  # east of UTC: the day starts the day before
    ("Eastern Standard Time", datetime(2026, 7, 15, 4, tzinfo=UTC)),  # west of UTC
    ("Lord Howe Standard Time", datetime(2026, 7, 14, 13, 30, tzinfo=UTC)),
])
def test_all_day_events_keep_their_dates_and_are_placed_in_their_own_zone(zone: str, start_utc: datetime) -> None:
    # What Graph answers under Prefer outlook.timezone="UTC": midnight of the dates, not converted.
    event = {"isAllDay": True, "originalStartTimeZone": zone,
             "start": {"dateTime": "2026-07-15T00:00:00.0000000", "timeZone": "UTC"},
             "end": {"dateTime": "2026-07-18T00:00:00.0000000", "timeZone": "UTC"}}
    times = event_times(event)
    assert times is not None and times.all_day and not times.zone_assumed
    assert (times.start_date, times.end_date) == (date(2026, 7, 15), date(2026, 7, 18))
    assert times.start_utc == start_utc
    assert (times.end_utc - times.start_utc).days == 3


def test_an_all_day_event_in_an_unknown_zone_is_placed_in_utc_and_says_so() -> None:
    event = {"isAllDay": True, "originalStartTimeZone": "tzone://Microsoft/Custom",
             "start": {"dateTime": "2026-07-15T00:00:00.0000000", "timeZone": "UTC"},
             "end": {"dateTime": "2026-07-16T00:00:00.0000000", "timeZone": "UTC"}}
    times = event_times(event)
    assert times is not None and times.zone_assumed and times.time_zone == ""
    assert times.start_utc == datetime(2026, 7, 15, tzinfo=UTC)


@pytest.mark.parametrize("bad", [{}, {"start": {"dateTime": "soon"}, "end": {"dateTime": "later"}},
                                 {"start": "x", "end": None}])
def test_unreadable_times_are_none_not_a_crash(bad: dict) -> None:
    assert event_times(bad) is None
