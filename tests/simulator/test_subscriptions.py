"""`/subscriptions` on Outlook events: the validation handshake, the documented limits and permissions, renewal,
reauthorization, deletion and expiry on the simulator's clock."""

from __future__ import annotations

from datetime import datetime

import pytest

from simulator.control import Control
from tests.simulator.test_graph_support import CLIENT_ID, USER_SCOPES
from tests.simulator.test_subscriptions_support import (
    APP_SCOPES,
    expires_in,
    notify_world,
    serve_receiver,
    subscription_body,
)


@pytest.fixture
def gw(local_tls):
    yield from notify_world(local_tls)


@pytest.fixture
def receiver(local_tls):
    yield from serve_receiver(local_tls)


@pytest.fixture
def lifecycle_receiver(local_tls):
    yield from serve_receiver(local_tls)


def _when(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00")[:26] + "+00:00")


def test_create_validates_the_endpoint_then_get_list_and_delete(gw, receiver):
    g, t = gw.graph, gw.alice_token
    made = g.post("/subscriptions", t, subscription_body(receiver, lifecycleNotificationUrl=receiver.url))
    assert made.status == 201, made.body
    sub = made.body
    assert sub["@odata.context"].endswith("$metadata#subscriptions/$entity")
    assert (sub["resource"], sub["changeType"], sub["clientState"]) == ("/me/events", "created,updated,deleted",
                                                                        "s3cret-state")
    assert sub["applicationId"] == "11111111-2222-3333-4444-555555555555" and sub["creatorId"] == gw.alice.id
    assert sub["latestSupportedTlsVersion"] == "v1_2" and sub["lifecycleNotificationUrl"] == receiver.url
    # Both URLs were validated, with a token that only survives when the endpoint URL-decodes it; the
    # notificationUrl's own query string is kept.
    assert len(receiver.tokens) == 2 and " " in receiver.tokens[0] and ":" in receiver.tokens[0]
    assert all(q.startswith("tenant=t1&validationToken=") for q in receiver.raw_queries)

    got = g.get(f"/subscriptions/{sub['id']}", t)
    assert got.status == 200 and got.body["clientState"] is None  # not given back after creation
    listed = g.get("/subscriptions", t).body["value"]
    assert [s["id"] for s in listed] == [sub["id"]] and listed[0]["clientState"] is None
    assert g.get("/subscriptions", gw.bob_token).body["value"] == []  # another user's
    assert g.get(f"/subscriptions/{sub['id']}", gw.bob_token).status == 404

    assert g.delete(f"/subscriptions/{sub['id']}", t).status == 204
    assert g.get(f"/subscriptions/{sub['id']}", t).error == "ResourceNotFound"
    assert g.delete(f"/subscriptions/{sub['id']}", t).status == 404


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("wrong", "Response must exactly match validationToken query parameter."),
        ("encoded", "Response must exactly match validationToken query parameter."),
        ("json", "Response must be of content type text/plain."),
        ("500", "Notification endpoint must respond with 200 OK to validation request."),
        ("slow", "Subscription validation request timed out."),
    ],
)
def test_a_failed_handshake_refuses_the_subscription(gw, receiver, mode, message):
    receiver.validation, receiver.delay = mode, 0.6
    Control(gw.sim).set_notification_timeouts(validation_seconds=0.3)  # Graph's 10 s, shortened for the test
    made = gw.graph.post("/subscriptions", gw.alice_token, subscription_body(receiver))
    assert made.status == 400 and made.error == "ValidationError", made.body
    assert made.body["error"]["message"].endswith(message)
    assert len(receiver.tokens) == 1
    assert gw.graph.get("/subscriptions", gw.alice_token).body["value"] == []


def test_the_lifecycle_url_is_validated_too(gw, receiver, lifecycle_receiver):
    lifecycle_receiver.validation = "wrong"
    made = gw.graph.post("/subscriptions", gw.alice_token,
                         subscription_body(receiver, lifecycleNotificationUrl=lifecycle_receiver.url))
    assert made.status == 400 and made.error == "ValidationError"
    assert len(lifecycle_receiver.tokens) == 1


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        ({"notificationUrl": "http://127.0.0.1:1/hook"}, "InvalidRequest", "scheme='http' is not supported"),
        ({"lifecycleNotificationUrl": "http://127.0.0.1:1/life"}, "InvalidRequest", "scheme='http'"),
        ({"notificationUrl": "https:///nohost"}, "InvalidRequest", "Invalid notification url"),
        ({"clientState": None}, "InvalidRequest", "ClientState is required"),
        ({"clientState": "x" * 129}, "InvalidRequest", "at most 128"),
        ({"changeType": "created,moved"}, "InvalidRequest", "Invalid changeType"),
        ({"expirationDateTime": "next week"}, "BadRequest", "Edm.DateTimeOffset"),
        # A callable: evaluated when the test runs (at collection it would be minutes stale in a long session).
        ({"expirationDateTime": lambda: expires_in(10_090)}, "ExtensionError",
         "can only be 10080 minutes in the future"),
        ({"resource": "/me/calendars/AAMk1/events"}, "InvalidRequest", "not supported"),
        ({"resource": "/me/events?$filter=subject eq 'x'"}, "InvalidRequest", "query options"),
        ({"resource": "https://graph.microsoft.com/v1.0/me/events"}, "InvalidRequest", "base URL"),
        ({"includeResourceData": True}, "InvalidRequest", "includeResourceData"),
        ({"latestSupportedTlsVersion": "v2_0"}, "InvalidRequest", "latestSupportedTlsVersion"),
        ({"colour": "blue"}, "BadRequest", "does not exist on type 'microsoft.graph.subscription'"),
        ({"id": "mine"}, "BadRequest", "read-only"),
    ],
)
def test_bad_subscriptions_are_refused_before_any_handshake(gw, receiver, change, code, fragment):
    change = {k: v() if callable(v) else v for k, v in change.items()}
    made = gw.graph.post("/subscriptions", gw.alice_token, subscription_body(receiver, **change))
    assert made.status == 400 and made.error == code, made.body
    assert fragment in made.body["error"]["message"]
    assert receiver.tokens == []


def test_expiration_is_raised_to_45_minutes_and_bounded_by_10080(gw, receiver):
    g, t = gw.graph, gw.alice_token
    now = gw.sim.clock.now()
    short = g.post("/subscriptions", t, subscription_body(receiver, minutes=5))
    assert short.status == 201
    assert abs((_when(short.body["expirationDateTime"]) - now).total_seconds() - 45 * 60) < 60
    longest = g.post("/subscriptions", t, subscription_body(receiver, minutes=10_079))
    assert longest.status == 201
    # Renewal is bound the same way, from the time of the renewal.
    too_long = g.patch(f"/subscriptions/{longest.body['id']}", t, {"expirationDateTime": expires_in(10_100)})
    assert too_long.status == 400 and too_long.error == "ExtensionError"
    assert "Operation: Update" in too_long.body["error"]["message"]


def test_delegated_subscriptions_reach_only_the_signed_in_users_mailbox(gw, receiver):
    g = gw.graph
    room = gw.room.address
    # Alice has full access to the room and Calendars.ReadWrite.Shared: enough to read it, not to subscribe.
    assert g.get(f"/users/{room}/events", gw.alice_token).status == 200
    refused = g.post("/subscriptions", gw.alice_token, subscription_body(receiver, f"/users/{room}/events"))
    assert refused.status == 403 and refused.error == "ExtensionError"
    assert refused.body["error"]["message"] == "Operation: Create; Exception: [Status Code: Forbidden; Reason: " \
                                               "Forbidden]"
    # The own mailbox by ID works with Calendars.Read alone; a sharing scope alone does not.
    reader = gw.token(gw.bob, frozenset({"Calendars.Read"}))
    assert g.post("/subscriptions", reader, subscription_body(receiver, f"/users/{gw.bob.id}/events")).status == 201
    shared_only = gw.token(gw.bob, frozenset({"Calendars.Read.Shared"}))
    assert g.post("/subscriptions", shared_only, subscription_body(receiver)).status == 403
    assert g.post("/subscriptions", gw.token(gw.bob, frozenset({"User.Read"})), subscription_body(receiver)).status \
        == 403
    assert len(receiver.tokens) == 1  # only the accepted one was validated


def test_app_only_subscriptions_reach_any_mailbox_the_app_may_read(gw, receiver):
    g = gw.graph
    app = gw.token(None, APP_SCOPES)
    made = g.post("/subscriptions", app, subscription_body(receiver, f"/users/{gw.room.address}/events"))
    assert made.status == 201, made.body
    assert made.body["creatorId"] != gw.alice.id
    assert g.post("/subscriptions", app, subscription_body(receiver, "/me/events")).status == 400
    no_role = gw.token(None, frozenset({"User.Read.All"}))
    assert g.post("/subscriptions", no_role, subscription_body(receiver, f"/users/{gw.room.id}/events")).status \
        == 403
    assert g.post("/subscriptions", app, subscription_body(receiver, "/users/ghost@nowhere.test/events")).status \
        == 404
    # App-only, an app lists what it made "for itself or for any user in the directory"; a user only their own.
    mine = g.post("/subscriptions", gw.alice_token, subscription_body(receiver)).body["id"]
    assert {s["id"] for s in g.get("/subscriptions", app).body["value"]} == {made.body["id"], mine}
    assert [s["id"] for s in g.get("/subscriptions", gw.alice_token).body["value"]] == [mine]
    other_app = gw.sim.tokens.issue(client_id="another-app", tenant_id=gw.tenant_id, user_id=None,
                                    scopes=APP_SCOPES).token
    assert g.get("/subscriptions", other_app).body["value"] == []
    assert g.delete(f"/subscriptions/{mine}", other_app).status == 404


def test_app_only_subscriptions_follow_exchange_rbac_scopes(gw, receiver):
    """An app with no tenant-wide role, given "Application Calendars.Read" over a management scope of rooms:
    it may subscribe to a room, not to a person's mailbox (the RBAC check is the one reads get)."""
    now = gw.sim.clock.time()
    rbac = gw.sim.directory.rbac
    gw.sim.directory.add_service_principal(gw.tenant_id, CLIENT_ID)
    rbac.create_scope(gw.tenant_id, "Rooms", "RecipientTypeDetails -eq 'RoomMailbox'", now)
    rbac.assign(gw.tenant_id, CLIENT_ID, "Application Calendars.Read", "Rooms", now)
    app = gw.token(None, frozenset())
    room = gw.graph.post("/subscriptions", app, subscription_body(receiver, f"/users/{gw.room.address}/events"))
    assert room.status == 201, room.body
    person = gw.graph.post("/subscriptions", app, subscription_body(receiver, f"/users/{gw.alice.address}/events"))
    assert person.status == 403 and person.error == "ExtensionError"
    assert "Access is denied" in person.body["error"]["message"]
    # Taking the room out of the scope closes its subscription's management too.
    rbac.set_scope(gw.tenant_id, "Rooms", "RecipientTypeDetails -eq 'EquipmentMailbox'", gw.sim.clock.time())
    assert gw.graph.get(f"/subscriptions/{room.body['id']}", app).status == 403


def test_renew_reauthorize_and_expire_on_the_simulators_clock(gw, receiver):
    g, t = gw.graph, gw.alice_token
    sub = g.post("/subscriptions", t, subscription_body(receiver, minutes=60)).body
    renewed = g.patch(f"/subscriptions/{sub['id']}", t, {"expirationDateTime": expires_in(3000, gw)})
    assert renewed.status == 200 and renewed.body["clientState"] == "s3cret-state"
    assert _when(renewed.body["expirationDateTime"]) > _when(sub["expirationDateTime"])
    assert g.patch(f"/subscriptions/{sub['id']}", t, {"clientState": "new"}).status == 400
    assert g.patch(f"/subscriptions/{sub['id']}", t, {"lifecycleNotificationUrl": receiver.url}).status == 400
    assert g.post(f"/subscriptions/{sub['id']}/reauthorize", t, {}).status == 204

    control = Control(gw.sim)
    control.advance_clock(seconds=2999 * 60)
    t = gw.token(gw.alice)  # the first token expired long ago
    assert g.get(f"/subscriptions/{sub['id']}", t).status == 200
    control.advance_clock(seconds=120)
    assert g.get(f"/subscriptions/{sub['id']}", t).status == 404
    assert g.get("/subscriptions", t).body["value"] == []
    assert g.patch(f"/subscriptions/{sub['id']}", t, {"expirationDateTime": expires_in(3000, gw)}).status == 404
    assert control.list_subscriptions() == []


def test_changing_the_notification_url_validates_the_new_one(gw, receiver, lifecycle_receiver):
    g, t = gw.graph, gw.alice_token
    sub = g.post("/subscriptions", t, subscription_body(receiver)).body
    lifecycle_receiver.validation = "500"
    moved = g.patch(f"/subscriptions/{sub['id']}", t, {"notificationUrl": lifecycle_receiver.url})
    assert moved.status == 400 and moved.error == "ValidationError"
    lifecycle_receiver.validation = "echo"
    moved = g.patch(f"/subscriptions/{sub['id']}", t, {"notificationUrl": lifecycle_receiver.url})
    assert moved.status == 200 and moved.body["notificationUrl"] == lifecycle_receiver.url


def test_subscriptions_need_a_token_and_take_injected_faults(gw, receiver):
    g = gw.graph
    assert g.post("/subscriptions", None, subscription_body(receiver)).status == 401
    g.post("/_control/graph/faults", None, {"kind": "503", "count": 1, "path_contains": "/subscriptions"})
    assert g.post("/subscriptions", gw.alice_token, subscription_body(receiver)).status == 503
    assert receiver.tokens == []
    assert g.post("/subscriptions", gw.alice_token, subscription_body(receiver)).status == 201
    assert g.call("PUT", "/subscriptions", gw.alice_token).status == 405
    assert USER_SCOPES  # the delegated default scopes include Calendars.ReadWrite
