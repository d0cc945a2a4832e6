"""Change notifications: the anonymous endpoint Microsoft Graph posts to (over the local host's HTTPS listener, as
Graph only posts to https URLs), its validation handshake, and what it does with notifications that do not check
out."""

import json
import uuid

import pytest
import requests

from shared import runtime


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
