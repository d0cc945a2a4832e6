"""Delivery of change notifications over HTTPS: the documented payload for changes made through Graph, in Outlook
(the control API) and by moves; ID formats; retries; faults; lifecycle notifications; expiry."""

from __future__ import annotations

import pytest

from simulator.control import Control
from simulator.testing import http_session
from tests.simulator.test_graph_support import CLIENT_ID, event_body
from tests.simulator.test_subscriptions_support import (
    APP_SCOPES,
    Receiver,
    expires_in,
    notify_world,
    serve_receiver,
    subscription_body,
    wait_for,
)

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


@pytest.fixture
def gw(local_tls):
    yield from notify_world(local_tls)


@pytest.fixture
def receiver(local_tls):
    yield from serve_receiver(local_tls)


@pytest.fixture
def lifecycle_receiver(local_tls):
    yield from serve_receiver(local_tls)


def _subscribe(gw, receiver, token=None, resource="/me/events", headers=None, **extra):
    made = gw.graph.post("/subscriptions", token or gw.alice_token, subscription_body(receiver, resource, **extra),
                         headers=headers)
    assert made.status == 201, made.body
    return made.body


def _flush(gw, timeout=5.0):
    result = Control(gw.sim).flush_notifications(timeout)
    assert result["flushed"], result
    return result


def test_graph_writes_are_notified_in_the_documented_shape(gw, receiver):
    g, t = gw.graph, gw.alice_token
    sub = _subscribe(gw, receiver)
    made = g.post("/me/events", t, event_body("Standup")).body
    g.patch(f"/me/events/{made['id']}", t, {"subject": "Standup (moved)"})
    g.delete(f"/me/events/{made['id']}", t)
    g.post("/users/bob@contoso.onmicrosoft.com/events", gw.bob_token, event_body("Not Alice's"))
    _flush(gw)

    got = receiver.notifications()
    assert [n["changeType"] for n in got] == ["created", "updated", "deleted"]
    first = got[0]
    assert set(first) == {"subscriptionId", "subscriptionExpirationDateTime", "changeType", "resource",
                          "resourceData", "clientState", "tenantId"}
    assert (first["subscriptionId"], first["clientState"], first["tenantId"]) == (sub["id"], "s3cret-state",
                                                                                 gw.tenant_id)
    assert first["subscriptionExpirationDateTime"] == sub["expirationDateTime"]
    assert first["resource"] == f"Users/{gw.alice.id}/Events/{made['id']}"
    assert first["resourceData"] == {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": first["resource"],
                                     "@odata.etag": first["resourceData"]["@odata.etag"], "id": made["id"]}
    assert first["resourceData"]["@odata.etag"].startswith('W/"')
    assert got[1]["resourceData"]["@odata.etag"] != first["resourceData"]["@odata.etag"]
    counters = Control(gw.sim).notification_counters()
    assert counters["sent"] == 3 and counters["queued"] == 0 and counters["dropped"] == 0


def test_change_types_filter_and_outlook_side_changes_are_notified(gw, receiver):
    control = Control(gw.sim)
    app = gw.token(None, APP_SCOPES)
    _subscribe(gw, receiver, app, f"/users/{gw.room.address}/events", changeType="created,deleted")
    booked = control.sim.graph.create_event(gw.room.address, event_body("Walk-in"), as_user=gw.bob.address)
    control.sim.graph.update_event(booked["id"], {"subject": "Walk-in (edited)"})
    control.sim.graph.delete_event(booked["id"])
    _flush(gw)
    got = receiver.notifications()
    assert [n["changeType"] for n in got] == ["created", "deleted"]  # updated was not asked for
    assert {n["resourceData"]["id"] for n in got} == {booked["defaultId"]}  # default IDs without the Prefer


def test_immutable_id_subscriptions_keep_their_format_through_moves(gw, receiver, lifecycle_receiver):
    g, t = gw.graph, gw.alice_token
    control = Control(gw.sim)
    _subscribe(gw, receiver, headers=IMMUTABLE)
    _subscribe(gw, lifecycle_receiver)  # default IDs
    other = control.sim.graph.create_calendar(gw.alice.address, "Side")
    made = g.post("/me/events", t, event_body("Travel"), headers=IMMUTABLE).body
    _flush(gw)
    control.sim.graph.move_event(made["id"], other["id"])
    g.patch(f"/me/events/{made['id']}", t, {"subject": "Travel (later)"})  # no Prefer: default ID expected
    _flush(gw)
    immutable = receiver.notifications()
    assert [(n["changeType"], n["resourceData"]["id"]) for n in immutable] == [
        ("created", made["id"]), ("updated", made["id"])]
    default = lifecycle_receiver.notifications()
    kinds = [n["changeType"] for n in default]
    assert kinds == ["created", "deleted", "created"]
    assert default[0]["resourceData"]["id"] == default[1]["resourceData"]["id"] != made["id"]
    assert default[2]["resourceData"]["id"] != default[1]["resourceData"]["id"]  # a new default ID after the move
    assert g.get(f"/me/events/{default[2]['resourceData']['id']}", t).status == 200


def test_a_room_leaving_the_apps_rbac_scope_stops_its_notifications(gw, receiver, lifecycle_receiver):
    now = gw.sim.clock.time()
    rbac = gw.sim.directory.rbac
    gw.sim.directory.add_service_principal(gw.tenant_id, CLIENT_ID)
    rbac.create_scope(gw.tenant_id, "Rooms", "RecipientTypeDetails -eq 'RoomMailbox'", now)
    rbac.assign(gw.tenant_id, CLIENT_ID, "Application Calendars.ReadWrite", "Rooms", now)
    app = gw.token(None, frozenset())
    _subscribe(gw, receiver, app, f"/users/{gw.room.address}/events", lifecycleNotificationUrl=lifecycle_receiver.url)
    graph = gw.sim.graph
    graph.create_event(gw.room.address, event_body("In scope"))
    _flush(gw)
    assert len(receiver.notifications()) == 1
    rbac.set_scope(gw.tenant_id, "Rooms", "RecipientTypeDetails -eq 'EquipmentMailbox'", gw.sim.clock.time())
    graph.create_event(gw.room.address, event_body("Out of scope"))
    graph.create_event(gw.room.address, event_body("Still out"))
    _flush(gw)
    assert len(receiver.notifications()) == 1
    assert [n["lifecycleEvent"] for n in lifecycle_receiver.notifications()] == ["reauthorizationRequired"]
    assert Control(gw.sim).notification_counters()["unauthorized"] == 2


def test_deliveries_are_batched_and_never_block_the_request(gw, receiver):
    control = Control(gw.sim)
    control.set_notification_latency(0.4)
    _subscribe(gw, receiver)
    receiver.delay = 0.0
    for i in range(5):
        assert gw.graph.post("/me/events", gw.alice_token, event_body(f"E{i}")).status == 201
    assert receiver.notifications() == []  # still waiting out the latency
    _flush(gw)
    assert len(receiver.notifications()) == 5
    assert len(receiver.posts) == 1  # due together, sent together


def test_failed_deliveries_are_retried_then_abandoned_after_four_hours(gw, receiver):
    control = Control(gw.sim)
    _subscribe(gw, receiver)
    receiver.statuses = [500, 503]
    gw.graph.post("/me/events", gw.alice_token, event_body("Retry me"))
    _flush(gw, timeout=8)  # retries after 1 s and 2 s
    assert [p["status"] for p in receiver.posts] == [500, 503, 202]
    assert len(receiver.notifications()) == 1
    assert control.notification_counters()["retried"] == 2

    receiver.statuses = [500] * 10
    gw.graph.post("/me/events", gw.alice_token, event_body("Never delivered"))
    assert wait_for(lambda: len(receiver.posts) == 4)
    control.advance_clock(seconds=4 * 3600 + 1)  # the retry is due at once, fails, and is given up
    _flush(gw)
    counters = control.notification_counters()
    assert counters["abandoned"] == 1 and counters["sent"] == 1 and len(receiver.posts) == 5


def test_a_slow_endpoint_is_throttled_then_dropped(gw, receiver):
    """Graph judges an endpoint after 100 notifications: 15% or more slow answers and its notifications are
    dropped (here every answer is slow: the 3 s limit is shortened to 0.3 s)."""
    control = Control(gw.sim)
    _subscribe(gw, receiver)
    control.set_notification_latency(0.3)
    control.set_notification_timeouts(delivery_seconds=0.3)
    receiver.post_delay = 0.5
    for i in range(100):
        gw.sim.graph.create_event(gw.alice.address, event_body(f"B{i}"))
    assert wait_for(lambda: control.notification_counters().get("throttle_dropped", 0) == 100, timeout=6)
    gw.sim.graph.create_event(gw.alice.address, event_body("After"))
    assert wait_for(lambda: control.notification_counters()["throttle_dropped"] == 101)
    counters = control.notification_counters()
    assert counters["sent"] == 0 and counters["retried"] == 0 and counters["posts"] == 1


def test_faults_drop_duplicate_and_reorder_repeatably(gw, receiver):
    control = Control(gw.sim)
    g, t = gw.graph, gw.alice_token
    _subscribe(gw, receiver)

    control.set_notification_faults(drop_rate=1.0)
    g.post("/me/events", t, event_body("Lost"))
    _flush(gw)
    assert receiver.notifications() == [] and control.notification_counters()["dropped"] == 1

    control.set_notification_faults(duplicate_rate=1.0)
    made = g.post("/me/events", t, event_body("Twice")).body
    _flush(gw)
    assert [n["resourceData"]["id"] for n in receiver.notifications()] == [made["id"]] * 2
    assert control.notification_counters()["duplicated"] == 1

    def reordered(seed):
        receiver.posts.clear()
        control.set_notification_faults(reorder=True, seed=seed)
        ids = [g.post("/me/events", t, event_body(f"R{i}")).body["id"] for i in range(8)]
        _flush(gw)
        seen = [n["resourceData"]["id"] for n in receiver.notifications()]
        assert sorted(seen) == sorted(ids)
        return [ids.index(i) for i in seen]

    first = reordered(7)
    assert first != sorted(first)
    assert reordered(7) == first  # the same seed, the same order

    control.set_notification_faults()  # all off
    receiver.posts.clear()
    g.post("/me/events", t, event_body("Plain"))
    _flush(gw)
    assert len(receiver.notifications()) == 1


def test_lifecycle_notifications_on_demand_and_before_expiry(gw, receiver, lifecycle_receiver):
    control = Control(gw.sim)
    g = gw.graph
    sub = _subscribe(gw, receiver, lifecycleNotificationUrl=lifecycle_receiver.url, minutes=24 * 60)
    control.set_notification_faults(drop_rate=1.0)  # change notifications only: lifecycle ones still arrive
    for event in ("missed", "reauthorizationRequired"):
        assert control.send_lifecycle_event(sub["id"], event)["queued"] is True
    _flush(gw)
    got = lifecycle_receiver.notifications()
    assert [n["lifecycleEvent"] for n in got] == ["missed", "reauthorizationRequired"]
    assert set(got[0]) == {"subscriptionId", "subscriptionExpirationDateTime", "tenantId", "clientState",
                           "lifecycleEvent"}
    assert got[0]["clientState"] == "s3cret-state" and receiver.notifications() == []

    # 12 hours before expiry Graph starts challenging, hourly, until the subscription is renewed.
    lifecycle_receiver.posts.clear()
    control.advance_clock(seconds=11 * 3600)
    _flush(gw)
    assert lifecycle_receiver.notifications() == []
    control.advance_clock(seconds=2 * 3600)
    assert wait_for(lambda: len(lifecycle_receiver.notifications()) == 1)
    assert lifecycle_receiver.notifications()[0]["lifecycleEvent"] == "reauthorizationRequired"
    assert g.patch(f"/subscriptions/{sub['id']}", gw.token(gw.alice),
                   {"expirationDateTime": expires_in(3 * 24 * 60, gw)}).status == 200
    control.advance_clock(seconds=2 * 3600)
    _flush(gw)
    assert len(lifecycle_receiver.notifications()) == 1
    token = gw.token(gw.alice)

    removed = control.send_lifecycle_event(sub["id"], "subscriptionRemoved")
    assert removed["removed"] is True
    _flush(gw)
    assert lifecycle_receiver.notifications()[-1]["lifecycleEvent"] == "subscriptionRemoved"
    assert g.get(f"/subscriptions/{sub['id']}", token).status == 404
    assert control.list_subscriptions() == []


def test_an_expired_subscription_delivers_nothing(gw, receiver):
    control = Control(gw.sim)
    _subscribe(gw, receiver, minutes=60)
    control.advance_clock(seconds=3601)
    gw.graph.post("/me/events", gw.token(gw.alice), event_body("After the end"))
    _flush(gw)
    assert receiver.notifications() == []
    assert Control(gw.sim).list_subscriptions() == []
    assert wait_for(lambda: gw.sim.counters.snapshot()["counts"].get("graph.subscriptions.expired") == 1)


def test_the_control_api_over_https(simulator, local_tls):
    """The session's server: its Simulator trusts the local CA for notifications, and the control routes work."""
    target = Receiver(local_tls)
    try:
        http = http_session(simulator.ca_path)
        control = f"{simulator.url}/_control"
        tenant = http.post(f"{control}/tenants", json={"name": "C", "domain": "c.test"}).json()["id"]
        user = http.post(f"{control}/tenants/{tenant}/users", json={"address": "u@c.test",
                                                                    "display_name": "U"}).json()
        token = simulator.sim.tokens.issue(client_id="app-1", tenant_id=tenant, user_id=user["id"],
                                           scopes=frozenset({"Calendars.ReadWrite"})).token
        assert http.put(f"{control}/notifications/latency", json={"seconds": 0}).status_code == 200
        faults = http.put(f"{control}/notifications/faults", json={"duplicate_rate": 1.0, "seed": 3})
        assert faults.status_code == 200 and faults.json()["faults"]["duplicate_rate"] == 1.0
        assert http.put(f"{control}/notifications/faults", json={"drop_rate": 2}).status_code == 400

        graph = {"Authorization": f"Bearer {token}"}
        sub = http.post(f"{simulator.url}/v1.0/subscriptions", headers=graph,
                        json=subscription_body(target)).json()
        listed = http.get(f"{control}/tenants/{tenant}/subscriptions").json()
        assert [s["id"] for s in listed] == [sub["id"]] and listed[0]["mailbox"] == "u@c.test"
        assert http.get(f"{control}/subscriptions").json() == listed
        http.post(f"{simulator.url}/v1.0/me/events", headers=graph, json=event_body())
        assert http.post(f"{control}/notifications/flush", json={"timeout": 5}).json()["flushed"] is True
        assert len(target.notifications()) == 2
        counters = http.get(f"{control}/notifications/counters").json()
        assert (counters["sent"], counters["duplicated"]) == (2, 1)
        assert http.post(f"{control}/subscriptions/{sub['id']}/lifecycle",
                         json={"event": "sleeping"}).status_code == 400
        assert http.post(f"{control}/subscriptions/{sub['id']}/lifecycle",
                         json={"event": "subscriptionRemoved"}).json()["removed"] is True
        assert http.post(f"{control}/subscriptions/{sub['id']}/lifecycle",
                         json={"event": "missed"}).status_code == 404
    finally:
        target.stop()
