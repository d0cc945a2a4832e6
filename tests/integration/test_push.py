"""Change notifications: the anonymous endpoint Microsoft Graph posts to (over the local host's HTTPS listener, as
Graph only posts to https URLs), its validation handshake, and what it does with notifications that do not check
out."""

import hashlib
import json
import string
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from shared import runtime
from shared.models import PullTarget
from tests.helpers import configure, new_system, wait_for

URL_SAFE = set(string.ascii_letters + string.digits + "-_")


@pytest.fixture
def graph_side(app, local_tls):
    """A client as Microsoft Graph is one: anonymous, over HTTPS, trusting the local CA."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(local_tls.ca_path)
    return session


def counters():
    return runtime.services().notifications.counters.snapshot()


def delta(before, after):
    changed = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    return {k: v for k, v in changed.items() if v}


@pytest.mark.parametrize("route", ["changes", "lifecycle"])
def test_the_validation_handshake_echoes_the_token_as_plain_text(app, graph_side, route):
    token = "Validation: Testing client application reachability for subscription Request-Id: " + str(uuid.uuid4())
    answer = graph_side.post(f"{app.https_url}/api/notifications/{route}", params={"validationToken": token},
                             headers={"content-type": "text/plain; charset=utf-8"}, timeout=10)
    assert answer.status_code == 200
    assert answer.text == token
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("token", ["<script>alert(1)</script>", "a\"onmouseover=x", "x" * 1025, "tab\there", ""])
def test_a_validation_token_that_is_not_bounded_plain_text_is_not_echoed(app, graph_side, token):
    answer = graph_side.post(f"{app.https_url}/api/notifications/changes", params={"validationToken": token},
                             timeout=10)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]["details"]["field"] == "validationToken"
    assert token not in answer.text or not token


def test_forged_and_malformed_notifications_are_ignored_counted_and_never_500(app, graph_side):
    url = f"{app.https_url}/api/notifications/changes"
    before = counters()
    unknown = {"value": [{"subscriptionId": str(uuid.uuid4()), "clientState": "guess", "changeType": "created",
                          "resource": "users/x/events/y"}]}
    assert graph_side.post(url, json=unknown, timeout=10).status_code == 202
    odd_items = {"value": [{"subscriptionId": "../../x", "clientState": "a", "changeType": "created"},
                           {"subscriptionId": str(uuid.uuid4()), "clientState": "a", "changeType": "exploded"},
                           {"subscriptionId": str(uuid.uuid4()), "clientState": "a"},
                           "not an object", 42]}
    assert graph_side.post(url, json=odd_items, timeout=10).status_code == 202
    for body, content_type, status in [
        (b"{", "application/json", 400), (b"[]", "application/json", 400), (b'{"value": {}}', "application/json", 400),
        (b'{"value": []}', "text/html", 415),
        (json.dumps({"value": [{"subscriptionId": "a", "clientState": "\ud800"}]}).encode(), "application/json", 400),
        (b'{"value": [' + b"[" * 50 + b"]" * 50 + b"]}", "application/json", 400),
        (b'{"value": ["' + b"x" * (1024 * 1024) + b'"]}', "application/json", 413),
    ]:
        answer = graph_side.post(url, data=body, headers={"content-type": content_type}, timeout=30)
        assert answer.status_code == status, (body[:40], answer.text)
        assert answer.json()["error"]["code"]
    seen = delta(before, counters())
    assert seen == {"ignored_unknown_subscription": 1, "ignored_malformed": 5 + 6, "ignored_too_large": 1}, seen


# --- subscriptions (a staff member's calendar: /me/events) --------------------------------------------------------




def subscriptions_of(simulator, directory):
    return simulator.control.list_subscriptions(directory.tenant_id)


def replaced(simulator, directory, first):
    """The one live subscription, once it is not `first` (two at once while a duplicate recreation is undone)."""
    subs = subscriptions_of(simulator, directory)
    return subs if len(subs) == 1 and subs[0]["id"] != first["id"] else None


def touch(api, system, kind="user", subject="u1"):
    """A PATCH that changes nothing Graph cares about: the connections service calls its hook."""
    response = api.patch(f"/api/systems/{system}/connections/{kind}/{subject}", json={"freebusy_calendar_id": None})
    assert response.status_code == 200, response.text


def outlook_event(subject, hours=30):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)
    return {"subject": subject, "start": {"dateTime": f"{start:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
            "end": {"dateTime": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"}}


def test_a_user_connection_is_subscribed_with_a_secret_client_state_kept_only_as_a_hash(
        app, api, simulator, directory, system, staff):
    touch(api, system)
    (sub,) = subscriptions_of(simulator, directory)
    assert sub["resource"] == "/me/events" and sub["delegated"] and sub["mailbox"] == directory.staff
    assert sub["changeType"] == "created,updated,deleted" and sub["immutableIds"]
    assert sub["notificationUrl"] == f"{app.https_url}/api/notifications/changes"
    assert sub["lifecycleNotificationUrl"] == f"{app.https_url}/api/notifications/lifecycle"
    assert len(sub["clientState"]) == 128 and set(sub["clientState"]) <= URL_SAFE
    expires = datetime.fromisoformat(sub["expirationDateTime"])
    assert timedelta(minutes=10_000) < expires - datetime.now(UTC) <= timedelta(minutes=10_080)
    repos = runtime.services().repos
    (row,) = list(repos.push_subscriptions.partition(system))
    lookup = repos.subscription_lookups.find(sub["id"])
    assert row.subscription_id == sub["id"] and lookup.system == system and lookup.subject_id == "u1"
    assert lookup.client_state_sha256 == hashlib.sha256(sub["clientState"].encode()).hexdigest()
    stored = json.dumps([vars(r) for r in (row, lookup)], default=str)
    assert sub["clientState"] not in stored
    touch(api, system)  # nothing to change: the same subscription stays
    assert [s["id"] for s in subscriptions_of(simulator, directory)] == [sub["id"]]
    before = counters()
    simulator.sim.graph.create_event(directory.staff, outlook_event("Dentist"), as_user=directory.staff)
    wait_for(lambda: delta(before, counters()).get("user_changes"), what="the notification of a user's event")
    assert delta(before, counters()) == {"accepted": 1, "user_changes": 1}  # counted; no cache to invalidate


def test_a_forged_notification_naming_a_real_subscription_is_ignored_and_counted(
        app, api, simulator, directory, system, staff, graph_side):
    touch(api, system)
    (sub,) = subscriptions_of(simulator, directory)
    before = counters()
    forged = {"value": [{"subscriptionId": sub["id"], "clientState": sub["clientState"][:-1] + "x",
                         "changeType": "updated", "resource": "Users/x/Events/y"},
                        {"subscriptionId": sub["id"], "clientState": "x" * 128, "lifecycleEvent": "missed"}]}
    answer = graph_side.post(f"{app.https_url}/api/notifications/changes", json=forged, timeout=10)
    assert answer.status_code == 202
    assert delta(before, counters()) == {"ignored_client_state_mismatch": 2}


def test_renewal_keeps_a_subscription_alive_across_simulated_weeks(app, api, simulator, directory, system, staff,
                                                                   timed):
    touch(api, system)
    (first,) = subscriptions_of(simulator, directory)
    assert timed.subscriptions.maintain(system) == {}  # nothing due yet
    for _ in range(3):  # 12 simulated days: past the 7-day maximum lifetime, renewed every 4 days
        simulator.control.advance_clock(days=4)
        assert timed.subscriptions.maintain(system) == {"renewed": 1}
    (sub,) = subscriptions_of(simulator, directory)
    assert sub["id"] == first["id"]
    assert datetime.fromisoformat(sub["expirationDateTime"]) - simulator.sim.clock.now() > timedelta(days=6)
    before = counters()
    simulator.sim.graph.create_event(directory.staff, outlook_event("After 12 days"), as_user=directory.staff)
    wait_for(lambda: delta(before, counters()).get("user_changes"), what="a notification 12 days on")


def test_without_renewal_the_subscription_expires_and_maintenance_recreates_it(app, api, simulator, directory,
                                                                               system, staff, timed):
    touch(api, system)
    (first,) = subscriptions_of(simulator, directory)
    simulator.control.advance_clock(days=8)  # the timer did not run for a week
    assert subscriptions_of(simulator, directory) == []
    assert timed.subscriptions.maintain(system) == {"recreated": 1}
    (sub,) = subscriptions_of(simulator, directory)
    assert sub["id"] != first["id"]
    assert runtime.services().repos.subscription_lookups.find(first["id"]) is None


def test_subscription_removed_is_recovered_by_a_new_subscription(app, api, simulator, directory, system, staff):
    touch(api, system)
    (first,) = subscriptions_of(simulator, directory)
    before = counters()
    simulator.control.send_lifecycle_event(first["id"], "subscriptionRemoved")
    (sub,) = wait_for(lambda: replaced(simulator, directory, first), what="a new subscription")
    seen = delta(before, counters())  # Graph may deliver a lifecycle notification more than once
    assert seen["lifecycle_subscriptionRemoved"] >= 1 and set(seen) == {"accepted", "lifecycle_subscriptionRemoved"}
    lookups = runtime.services().repos.subscription_lookups
    wait_for(lambda: lookups.find(first["id"]) is None, what="the old subscription's lookup row gone")
    assert lookups.find(sub["id"]).subject_id == "u1"


def test_removing_the_connection_forgets_its_subscription(app, api, simulator, directory, system, staff):
    touch(api, system)
    (sub,) = subscriptions_of(simulator, directory)
    assert api.delete(f"/api/systems/{system}/connections/user/u1").status_code == 200
    repos = runtime.services().repos
    assert list(repos.push_subscriptions.partition(system)) == [] and repos.subscription_lookups.find(sub["id"]) is None
    # Deleted at Graph with the user's token before the tokens were erased: nothing notifies for the next 7 days.
    assert subscriptions_of(simulator, directory) == []


# --- a room in application mode: notifications pull it within seconds ----------------------------------------------

ROLE = "Application Calendars.ReadWrite"


@pytest.fixture
def room(api, simulator, directory):
    """An app-mode room with two-way sync, created through HTTP as a host would (no sign-in), its calendar read
    once; the subscription its connection got on the way."""
    control = simulator.control
    control.set_mailbox_attributes(directory.room, CustomAttribute1="booking")
    control.create_management_scope(directory.tenant_id, "Bookable", "CustomAttribute1 -eq 'booking'")
    control.assign_management_role(directory.tenant_id, directory.client_id, ROLE, "Bookable")
    system = new_system()
    configure(api, system, directory, app_access={"enabled": True, "tenant_id": directory.tenant_id})
    created = api.put(f"/api/systems/{system}/connections/space/r1",
                      json={"mode": "app", "sync_resource": directory.room, "two_way": True})
    assert created.status_code == 201, created.text
    (sub,) = subscriptions_of(simulator, directory)
    assert sub["resource"] == f"/users/{directory.room}/events" and not sub["delegated"]
    room = Room(api, simulator, directory, system, sub)
    runtime.services().pull.pull(system, "r1")  # the first baseline (an empty calendar)
    return room


class Room:
    def __init__(self, api, simulator, directory, system, subscription):
        self.api, self.simulator, self.directory, self.system = api, simulator, directory, system
        self.subscription = subscription
        self.cursor = "0"
        self.seen: list[dict] = []

    def book_in_outlook(self, subject, hours=30):
        return self.simulator.sim.graph.create_event(self.directory.room, outlook_event(subject, hours),
                                                     as_user=self.directory.other_staff)

    def feed(self):
        """Everything published so far (read by cursor through the API, as the host does)."""
        body = self.api.get(f"/api/systems/{self.system}/connections/space/r1/external-events"
                            f"?cursor={self.cursor}").json()
        self.cursor = body["next_cursor"]
        self.seen.extend(body["changes"])
        return self.seen

    def wait_published(self, event_id, timeout=15.0):
        return wait_for(lambda: [c for c in self.feed() if c["event_id"] == event_id], timeout,
                        f"event {event_id[:12]}… in the feed")


def test_an_outlook_booking_reaches_the_feed_in_seconds_through_a_notification(room):
    before = counters()
    started = time.monotonic()
    made = room.book_in_outlook("Board meeting")
    (change,) = room.wait_published(made["id"])
    elapsed = time.monotonic() - started
    assert change["type"] == "created" and change["event"]["subject"] == "Board meeting"
    assert elapsed < 8, elapsed  # delivery 1 s + coalescing 1 s + the queue's polling (at most 2 s) + the pull
    seen = delta(before, counters())
    assert seen["accepted"] >= 1 and seen["pulls_queued"] == 1, seen


def test_notifications_within_a_second_make_one_pull(room):
    before = counters()
    made = [room.book_in_outlook(f"Burst {i}", hours=30 + i) for i in range(3)]
    for event in made:
        room.wait_published(event["id"])
    seen = delta(before, counters())
    assert seen["accepted"] == 3 and seen["pulls_queued"] == 1, seen


def test_a_forged_room_notification_pulls_nothing(room, app, graph_side):
    before = counters()
    forged = {"value": [{"subscriptionId": room.subscription["id"], "clientState": "forged" * 20,
                         "changeType": "created", "resource": "Users/x/Events/y"}]}
    assert graph_side.post(f"{app.https_url}/api/notifications/changes", json=forged, timeout=10).status_code == 202
    assert delta(before, counters()) == {"ignored_client_state_mismatch": 1}
    assert runtime.services().repos.subscription_lookups.find(room.subscription["id"]).pull_due_at is None


def test_subscription_removed_recreates_the_subscription_and_pulls_what_happened_meanwhile(room):
    room.simulator.control.send_lifecycle_event(room.subscription["id"], "subscriptionRemoved")
    before = counters()
    made = room.book_in_outlook("Booked while unsubscribed")  # no subscription: Graph sends no notification
    room.wait_published(made["id"])
    (sub,) = wait_for(lambda: replaced(room.simulator, room.directory, room.subscription), what="one subscription")
    assert sub["resource"] == room.subscription["resource"]
    # Only lifecycle notifications came: the booking was pulled because the subscription was recreated.
    assert set(delta(before, counters())) == {"accepted", "lifecycle_subscriptionRemoved"}


def test_missed_notifications_make_a_pull(room):
    room.simulator.control.set_notification_faults(drop_rate=1.0, seed=7)
    made = room.book_in_outlook("Lost notification")
    assert room.simulator.control.flush_notifications(5)["flushed"]
    assert room.simulator.control.notification_counters()["dropped"] == 1
    before = counters()
    room.simulator.control.send_lifecycle_event(room.subscription["id"], "missed")
    room.wait_published(made["id"])
    assert delta(before, counters()) == {"accepted": 1, "lifecycle_missed": 1, "pulls_queued": 1}


def test_the_rooms_own_exported_event_is_never_published_as_an_outlook_booking(room):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    item = {"patron": {"first_name": "Ada", "last_name": "Lovelace"},
            "occurrences": [{"key": "o1", "start": f"{start:%Y-%m-%dT%H:%M:%S}",
                             "end": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}", "time_zone": "UTC"}]}
    before = counters()
    exported = room.api.put(f"/api/systems/{room.system}/connections/space/r1/items/b1", json=item)
    assert exported.status_code == 200, exported.text
    own = exported.json()["occurrences"][0]["sync_id"]
    wait_for(lambda: delta(before, counters()).get("accepted"), what="the notification of the export")
    made = room.book_in_outlook("Made after the export")
    room.wait_published(made["id"])  # the pulls after both notifications are done
    assert [c["event_id"] for c in room.feed()] == [made["id"]] and own != made["id"]


def test_the_sweep_reads_a_room_with_a_live_subscription_once_per_push_sweep_minutes(room, timed):
    subscribed, polled = PullTarget(system=room.system, subject_id="r1"), PullTarget(system=room.system,
                                                                                     subject_id="r2")
    timed.subscriptions.sweep_plan()
    due = timed.subscriptions.sweep_plan()  # the next tick, moments later
    assert (due(subscribed), due(polled)) == (False, True)
    room.simulator.control.advance_clock(seconds=61 * 60)  # PUSH_SWEEP_MINUTES (60) later
    due = timed.subscriptions.sweep_plan()
    assert (due(subscribed), due(polled)) == (True, True)
    room.simulator.control.advance_clock(days=8)  # the subscription expired (the timer did not run)
    due = timed.subscriptions.sweep_plan()
    assert due(subscribed)
