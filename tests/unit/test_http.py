import json
import logging

import azure.functions as func
import pytest

from shared.errors import ConcurrencyConflict, NotFound, ValidationFailed
from shared.http import endpoint, read_json
from shared.validation import field


def make_request(body: bytes = b"", content_type: str = "application/json") -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost/api/x", headers={"content-type": content_type}, body=body)


def body_of(response: func.HttpResponse) -> dict:
    return json.loads(response.get_body())


def test_domain_error_maps_to_its_status_and_json_shape():
    @endpoint
    def handler(req):
        raise NotFound("connection not found")

    response = handler(make_request())
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert body_of(response) == {"error": {"code": "not_found", "message": "connection not found"}}


def test_microsoft_code_travels_in_the_error_body():
    @endpoint
    def handler(req):
        raise ConcurrencyConflict("lost a race", microsoft_code="AADSTS700082")

    body = body_of(handler(make_request()))
    assert body["error"]["code"] == "concurrency_conflict"
    assert body["error"]["microsoft_code"] == "AADSTS700082"


def test_unexpected_exception_is_500_without_traceback_but_logged(caplog):
    @endpoint
    def handler(req):
        raise RuntimeError("secret-ish internal detail")

    with caplog.at_level(logging.ERROR):
        response = handler(make_request())
    text = response.get_body().decode()
    assert response.status_code == 500
    assert body_of(response)["error"]["code"] == "internal_error"
    assert "Traceback" not in text and "secret-ish" not in text
    assert "RuntimeError" in caplog.text  # the operator still gets the traceback in the log


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "application/json", 400, "invalid_json"),
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b"a=b", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{" + b" " * (5 * 1024 * 1024) + b"}", "application/json", 413, "payload_too_large"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(body, content_type, status, code):
    @endpoint
    def handler(req):
        return read_json(req)

    response = handler(make_request(body, content_type))
    assert response.status_code == status
    assert body_of(response)["error"]["code"] == code


def test_invalid_json_message_says_where():
    @endpoint
    def handler(req):
        return read_json(req)

    message = body_of(handler(make_request(b'{"a": }')))["error"]["message"]
    assert "line 1 column 7" in message


def test_field_checks_presence_and_type_and_names_the_field():
    data = {"enabled": True, "count": 3, "name": "x"}
    assert field(data, "count", int) == 3
    assert field(data, "missing", str, required=False, default="d") == "d"
    with pytest.raises(ValidationFailed, match="missing: is required"):
        field(data, "missing", str)
    with pytest.raises(ValidationFailed, match="name: must be an integer"):
        field(data, "name", int)
    # JSON true is not a number
    with pytest.raises(ValidationFailed, match="enabled: must be an integer"):
        field(data, "enabled", int)
    assert field(data, "enabled", bool) is True
