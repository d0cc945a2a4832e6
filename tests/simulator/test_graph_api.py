"""Graph resources through the real handler: auth, users, calendars, events, idempotency, extended properties,
time zones and delegation."""

from __future__ import annotations

import pytest

from tests.simulator.test_graph_support import (
    CLIENT_ID,
    USER_SCOPES,
    World,
    build_world,
    event_body,
)

ROOM = "/users/room1@contoso.onmicrosoft.com"
PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SyncId"


@pytest.fixture
def gw() -> World:
    return build_world()


# --- authentication and errors ---------------------------------------------------------------------------------


def test_missing_invalid_and_expired_tokens_get_graph_shaped_401(gw: World) -> None:
    g = gw.graph
    missing = g.get("/me", headers={"client-request-id": "abc-123"})
    assert missing.status == 401
    assert missing.error == "InvalidAuthenticationToken"
    inner = missing.body["error"]["innerError"]
    assert inner["client-request-id"] == "abc-123" and inner["request-id"] and inner["date"]
    assert missing.headers["request-id"] == inner["request-id"]
    assert missing.headers["client-request-id"] == "abc-123"

    assert g.get("/me", "not-a-token").error == "InvalidAuthenticationToken"
    short = gw.token(gw.alice, lifetime=60)
    assert g.get("/me", short).status == 200
    gw.sim.clock.advance(61)
    assert g.get("/me", short).status == 401


def test_unknown_segment_and_unknown_user(gw: World) -> None:
    g = gw.graph
    assert g.get("/me/nonsense", gw.alice_token).status == 400
    nobody = g.get("/users/nobody@contoso.onmicrosoft.com/calendar", gw.alice_token)
    assert (nobody.status, nobody.error) == (404, "ErrorInvalidUser")


# --- users and calendars ---------------------------------------------------------------------------------------


def test_me_and_users_by_id_or_address(gw: World) -> None:
    g = gw.graph
    me = g.get("/me", gw.alice_token).body
    assert me["id"] == gw.alice.id
    assert me["mail"] == me["userPrincipalName"] == "alice@contoso.onmicrosoft.com"
    assert me["displayName"] == "Alice Archer"
    by_address = g.get(ROOM, gw.alice_token).body
    by_id = g.get(f"/users/{gw.room.id}", gw.alice_token).body
    assert by_address["id"] == by_id["id"] == gw.room.id
    assert set(g.get("/me", gw.alice_token, query={"$select": "mail"}).body) == {"@odata.context", "id", "mail"}


def test_default_calendar_is_created_lazily_and_secondary_calendars_can_be_added(gw: World) -> None:
    g = gw.graph
    default = g.get("/me/calendar", gw.alice_token).body
    assert default["name"] == "Calendar" and default["isDefaultCalendar"] is True
    assert default["canEdit"] is True and default["changeKey"]
    assert default["owner"] == {"name": "Alice Archer", "address": "alice@contoso.onmicrosoft.com"}

    created = g.post("/me/calendars", gw.alice_token, {"name": "Shifts"})
    assert created.status == 201 and created.body["isDefaultCalendar"] is False
    assert g.post("/me/calendars", gw.alice_token, {"name": "shifts"}).status == 409
    via_control = gw.state.create_calendar(gw.room.address, "Second room calendar")
    names = [c["name"] for c in g.get("/me/calendars", gw.alice_token).body["value"]]
    assert names == ["Calendar", "Shifts"]
    room_cals = g.get(f"{ROOM}/calendars", gw.alice_token).body["value"]
    assert {c["id"] for c in room_cals} >= {via_control["id"]}
    assert g.get(f"/me/calendars/{created.body['id']}", gw.alice_token).body["name"] == "Shifts"
    assert g.get(f"/me/calendars/{via_control['id']}", gw.alice_token).error == "ErrorItemNotFound"


# --- events ----------------------------------------------------------------------------------------------------


def test_event_create_read_update_delete(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    created = g.post("/me/events", t, event_body(
        "Team sync", body={"contentType": "text", "content": "Agenda"}, location={"displayName": "Room One"},
        showAs="tentative", categories=["Blue"],
    ))
    assert created.status == 201, created.body
    ev = created.body
    assert ev["type"] == "singleInstance" and ev["seriesMasterId"] is None
    assert ev["organizer"]["emailAddress"]["address"] == "alice@contoso.onmicrosoft.com"
    assert ev["start"] == {"dateTime": "2030-01-07T09:00:00.0000000", "timeZone": "UTC"}
    assert ev["location"]["displayName"] == "Room One" and ev["showAs"] == "tentative"
    assert ev["iCalUId"] and ev["changeKey"] and ev["createdDateTime"].endswith("Z")
    assert "transactionId" not in ev  # only returned when set
    assert ev["bodyPreview"] == "Agenda"

    got = g.get(f"/me/events/{ev['id']}", t).body
    assert got["id"] == ev["id"] and got["subject"] == "Team sync"
    assert g.get(f"/me/calendar/events/{ev['id']}", t).status == 200

    gw.sim.clock.advance(5)
    patched = g.patch(f"/me/events/{ev['id']}", t, {"subject": "Team sync (moved)",
                                                     "end": {"dateTime": "2030-01-07T11:00:00", "timeZone": "UTC"}})
    assert patched.status == 200
    assert patched.body["subject"] == "Team sync (moved)"
    assert patched.body["end"]["dateTime"].startswith("2030-01-07T11:00:00")
    assert patched.body["changeKey"] != ev["changeKey"]
    assert patched.body["lastModifiedDateTime"] > ev["lastModifiedDateTime"]

    assert g.delete(f"/me/events/{ev['id']}", t).status == 204
    again = g.delete(f"/me/events/{ev['id']}", t)
    assert (again.status, again.error) == (404, "ErrorItemNotFound")
    assert g.get(f"/me/events/{ev['id']}", t).status == 404


def test_events_in_a_named_calendar_stay_there(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    cal = g.post("/me/calendars", t, {"name": "Shifts"}).body
    ev = g.post(f"/me/calendars/{cal['id']}/events", t, event_body("Shift")).body
    assert g.get(f"/me/calendars/{cal['id']}/events/{ev['id']}", t).status == 200
    assert g.get(f"/me/calendar/events/{ev['id']}", t).error == "ErrorItemNotFound"  # not in the default calendar
    listed = g.get(f"/me/calendars/{cal['id']}/events", t).body["value"]
    assert [e["id"] for e in listed] == [ev["id"]]
    assert gw.state.list_events(gw.alice.address, cal["id"])[0]["subject"] == "Shift"


def test_validation_errors(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    assert g.post("/me/events", t, {"subject": "no times"}).status == 400
    backwards = g.post("/me/events", t, event_body(start="2030-01-07T10:00:00", end="2030-01-07T09:00:00"))
    assert backwards.status == 400
    bad_zone = g.post("/me/events", t, event_body(tz="Mars Standard Time"))
    assert (bad_zone.status, bad_zone.error) == (400, "TimeZoneNotSupportedException")
    assert g.post("/me/events", t, event_body(showAs="sleeping")).status == 400
    raw = g.client.open("/v1.0/me/events", method="POST", data="{not json",
                        headers={"Authorization": f"Bearer {t}", "Content-Type": "application/json"})
    assert raw.status_code == 400


def test_transaction_id_makes_a_retried_create_idempotent(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    body = event_body("Booking 42", transactionId="slot-42")
    first = g.post(f"{ROOM}/events", t, body)
    replay = g.post(f"{ROOM}/events", t, body)
    assert first.status == replay.status == 201
    assert replay.body["id"] == first.body["id"]
    assert first.body["transactionId"] == "slot-42"
    assert len(gw.state.list_events(gw.room.address)) == 1

    different = g.post(f"{ROOM}/events", t, event_body("Another booking", transactionId="slot-42"))
    assert (different.status, different.error) == (400, "ErrorDuplicateTransactionId")
    assert len(gw.state.list_events(gw.room.address)) == 1
    # transactionIds are per mailbox: the same one in Alice's own calendar is a new event.
    assert g.post("/me/events", t, body).status == 201
    # after the event is deleted the id may be used again
    g.delete(f"{ROOM}/events/{first.body['id']}", t)
    assert g.post(f"{ROOM}/events", t, event_body("Rebooked", transactionId="slot-42")).status == 201
    cant_change = g.patch(f"/me/events/{g.get('/me/events', t).body['value'][0]['id']}", t, {"transactionId": "x"})
    assert cant_change.status == 400


def test_single_value_extended_properties_round_trip_only_when_expanded(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    ev = g.post(f"{ROOM}/events", t, event_body(singleValueExtendedProperties=[{"id": PROP, "value": "booking-7"}]))
    assert ev.status == 201
    assert "singleValueExtendedProperties" not in ev.body
    plain = g.get(f"{ROOM}/events/{ev.body['id']}", t).body
    assert "singleValueExtendedProperties" not in plain
    expand = f"singleValueExtendedProperties($filter=id eq '{PROP}')"
    expanded = g.get(f"{ROOM}/events/{ev.body['id']}", t, query={"$expand": expand}).body
    assert expanded["singleValueExtendedProperties"] == [{"id": PROP, "value": "booking-7"}]
    other = "String {00020329-0000-0000-c000-000000000046} Name Other"
    unrelated = g.get(f"{ROOM}/events/{ev.body['id']}", t,
                      query={"$expand": f"singleValueExtendedProperties($filter=id eq '{other}')"}).body
    assert "singleValueExtendedProperties" not in unrelated

    flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP}' and ep/value eq 'booking-7')"
    found = g.get(f"{ROOM}/events", t, query={"$filter": flt, "$expand": expand}).body["value"]
    assert [e["id"] for e in found] == [ev.body["id"]]
    none = g.get(f"{ROOM}/events", t, query={"$filter": flt.replace("booking-7", "booking-8")}).body["value"]
    assert none == []

    g.patch(f"{ROOM}/events/{ev.body['id']}", t, {"singleValueExtendedProperties": [{"id": PROP, "value": "b-9"}]})
    again = g.get(f"{ROOM}/events/{ev.body['id']}", t, query={"$expand": expand}).body
    assert again["singleValueExtendedProperties"] == [{"id": PROP, "value": "b-9"}]
    assert g.post("/me/events", t, event_body(singleValueExtendedProperties=[{"id": "nonsense", "value": "x"}])
                  ).status == 400


def test_select_limits_properties_and_ignores_unknown_names(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    ev = g.post("/me/events", t, event_body()).body
    got = g.get(f"/me/events/{ev['id']}", t, query={"$select": "subject,start,noSuchField"}).body
    assert set(got) == {"@odata.context", "@odata.etag", "id", "subject", "start"}


# --- time zones ------------------------------------------------------------------------------------------------


def test_windows_and_iana_zones_are_stored_in_utc_and_answered_in_the_preferred_zone(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    pst = g.post("/me/events", t, event_body(start="2030-07-01T09:00:00", end="2030-07-01T10:00:00",
                                             tz="Pacific Standard Time")).body
    assert pst["start"] == {"dateTime": "2030-07-01T16:00:00.0000000", "timeZone": "UTC"}  # PDT is UTC-7
    assert pst["originalStartTimeZone"] == "Pacific Standard Time"
    iana = g.post("/me/events", t, event_body(start="2030-07-01T09:00:00", end="2030-07-01T10:00:00",
                                              tz="Europe/Berlin")).body
    assert iana["start"]["dateTime"].startswith("2030-07-01T07:00:00")

    prefer = {"Prefer": 'outlook.timezone="W. Europe Standard Time"'}
    local = g.get(f"/me/events/{pst['id']}", t, headers=prefer)
    assert local.body["start"] == {"dateTime": "2030-07-01T18:00:00.0000000", "timeZone": "W. Europe Standard Time"}
    assert local.headers["Preference-Applied"] == 'outlook.timezone="W. Europe Standard Time"'
    tokyo = g.get(f"/me/events/{pst['id']}", t, headers={"Prefer": 'outlook.timezone="Asia/Tokyo"'}).body
    assert tokyo["start"] == {"dateTime": "2030-07-02T01:00:00.0000000", "timeZone": "Asia/Tokyo"}
    unknown = g.get(f"/me/events/{pst['id']}", t, headers={"Prefer": 'outlook.timezone="Nowhere"'})
    assert unknown.body["start"]["timeZone"] == "UTC" and "Preference-Applied" not in unknown.headers


def test_weekly_recurrence_keeps_local_time_across_dst(gw: World) -> None:
    """US DST starts 2030-03-10: a 09:00 Pacific Monday meeting moves from 17:00Z to 16:00Z."""
    g, t = gw.graph, gw.alice_token
    series = g.post("/me/events", t, event_body(
        "Weekly", start="2030-03-04T09:00:00", end="2030-03-04T09:30:00", tz="Pacific Standard Time",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 3}},
    ))
    assert series.status == 201, series.body
    assert series.body["type"] == "seriesMaster"
    assert series.body["recurrence"]["range"]["recurrenceTimeZone"] == "Pacific Standard Time"
    view = g.get("/me/calendarView", t, query={"startDateTime": "2030-03-01T00:00:00Z",
                                              "endDateTime": "2030-04-01T00:00:00Z"}).body["value"]
    assert [e["start"]["dateTime"][:16] for e in view] == ["2030-03-04T17:00", "2030-03-11T16:00", "2030-03-18T16:00"]
    assert {e["type"] for e in view} == {"occurrence"}
    assert {e["seriesMasterId"] for e in view} == {series.body["id"]}
    local = g.get("/me/calendarView", t, headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
                  query={"startDateTime": "2030-03-01T00:00:00Z", "endDateTime": "2030-04-01T00:00:00Z"}).body
    assert [e["start"]["dateTime"][11:16] for e in local["value"]] == ["09:00"] * 3


def test_all_day_events_need_midnight_boundaries(gw: World) -> None:
    g, t = gw.graph, gw.alice_token
    ok = g.post("/me/events", t, event_body(start="2030-05-01T00:00:00", end="2030-05-02T00:00:00",
                                            tz="Eastern Standard Time", isAllDay=True))
    assert ok.status == 201 and ok.body["isAllDay"] is True
    bad = g.post("/me/events", t, event_body(start="2030-05-01T08:00:00", end="2030-05-02T00:00:00", isAllDay=True))
    assert bad.status == 400


# --- delegation ------------------------------------------------------------------------------------------------


def test_room_calendar_needs_a_grant_and_the_shared_scope(gw: World) -> None:
    g = gw.graph
    assert g.post(f"{ROOM}/events", gw.alice_token, event_body()).status == 201
    own_only = gw.token(gw.alice, USER_SCOPES)  # granted, but no Calendars.ReadWrite.Shared
    denied = g.post(f"{ROOM}/events", own_only, event_body())
    assert (denied.status, denied.error) == (403, "ErrorAccessDenied")
    assert g.get(f"{ROOM}/calendar", own_only).status == 403
    assert g.post("/me/events", own_only, event_body()).status == 201

    ungranted = gw.token(gw.bob)  # has the Shared scope, but no grant on the room
    assert g.get(f"{ROOM}/calendar", ungranted).error == "ErrorAccessDenied"
    assert g.get(f"{ROOM}/calendarView", ungranted, query={"startDateTime": "2030-01-01",
                                                           "endDateTime": "2030-02-01"}).status == 403


def test_read_only_scopes_and_reviewer_grants_cannot_write(gw: World) -> None:
    g = gw.graph
    reader = gw.token(gw.alice, frozenset({"Calendars.Read"}))
    assert g.get("/me/calendar", reader).body["canEdit"] is False
    assert g.post("/me/events", reader, event_body()).error == "ErrorAccessDenied"
    gw.sim.directory.grant_mailbox(gw.bob.id, gw.room.id, "reviewer")
    reviewer = gw.token(gw.bob)
    assert g.get(f"{ROOM}/calendar", reviewer).body["canEdit"] is False
    assert g.post(f"{ROOM}/events", reviewer, event_body()).error == "ErrorAccessDenied"
    assert g.get(f"{ROOM}/calendar", gw.alice_token).body["canEdit"] is True


def test_app_only_tokens_use_application_permissions_within_their_tenant(gw: World) -> None:
    g, sim = gw.graph, gw.sim
    app = sim.tokens.issue(client_id=CLIENT_ID, tenant_id=gw.tenant_id, user_id=None,
                           scopes=frozenset({"Calendars.ReadWrite"})).token
    me = g.get("/me", app)
    assert me.status == 400 and "delegated" in me.body["error"]["message"]
    created = g.post(f"{ROOM}/events", app, event_body())
    assert created.status == 201
    assert created.body["organizer"]["emailAddress"]["address"] == gw.room.address
    reader = sim.tokens.issue(client_id=CLIENT_ID, tenant_id=gw.tenant_id, user_id=None,
                              scopes=frozenset({"Calendars.Read"})).token
    assert g.get(f"{ROOM}/calendar", reader).status == 200
    assert g.post(f"{ROOM}/events", reader, event_body()).status == 403
    other = sim.directory.add_tenant("Fabrikam", "fabrikam.onmicrosoft.com")
    foreign = sim.tokens.issue(client_id=CLIENT_ID, tenant_id=other.id, user_id=None,
                               scopes=frozenset({"Calendars.ReadWrite"})).token
    assert g.get(f"{ROOM}/calendar", foreign).status == 404


@pytest.mark.parametrize("path", ["/me/calendarView", "/me/calendar/calendarView"])
def test_segment_names_are_case_insensitive(gw: World, path: str) -> None:
    got = gw.graph.get(path.lower(), gw.alice_token, query={"startdatetime": "2030-01-01T00:00:00",
                                                                  "enddatetime": "2030-01-02T00:00:00"})
    assert got.status == 200 and got.body["value"] == []
