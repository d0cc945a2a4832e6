"""Entity group transactions as this project writes and reads them, held against the Tables SDK's own encoder and
against the answers Azurite gives (the bodies below are Azurite's, with their line endings)."""

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from azure.core import MatchConditions
from azure.data.tables import EdmType, EntityProperty, UpdateMode
from azure.data.tables._serialize import _add_entity_properties  # the SDK's encoder, as the oracle

from shared.storage.transactions import TransactionRefused, decode_body, encode_body, odata_json

ENTITIES = [
    {"PartitionKey": "p'1", "RowKey": "r ä", "s": "hé \"q\"", "n": EntityProperty(2**40, EdmType.INT64),
     "i": 7, "neg": -3, "f": 1.5, "t": True, "no": False, "d": datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
     "b": b"\x00\xff", "gone": None, "j": json.dumps({"a": [1, 2]})},
    {"PartitionKey": "p", "RowKey": "r", "d": datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2))),
     "zero": EntityProperty(0, EdmType.INT64), "empty": ""},
]


@pytest.mark.parametrize("entity", ENTITIES)
def test_entity_json_is_what_the_sdk_writes(entity):
    assert json.loads(odata_json(entity)) == _add_entity_properties(entity)


def test_values_the_service_cannot_hold_are_refused_before_sending():
    with pytest.raises(TypeError, match="32-bit"):
        odata_json({"PartitionKey": "p", "RowKey": "r", "n": 2**31})
    with pytest.raises(ValueError, match="naive"):
        odata_json({"PartitionKey": "p", "RowKey": "r", "d": datetime(2026, 1, 1)})
    with pytest.raises(TypeError, match="set"):
        odata_json({"PartitionKey": "p", "RowKey": "r", "x": {1}})


def test_body_is_a_changeset_of_http_requests_a_mime_parser_reads():
    etag = 'W/"datetime\'2026-11-21T10%3A04%3A31.7065852Z\'"'
    operations = [
        ("create", {"PartitionKey": "p'1", "RowKey": "a"}, {}),
        ("upsert", {"PartitionKey": "p'1", "RowKey": "b c", "s": "x"}, {"mode": UpdateMode.REPLACE}),
        ("upsert", {"PartitionKey": "p'1", "RowKey": "d"}, {"mode": UpdateMode.MERGE}),
        ("update", {"PartitionKey": "p'1", "RowKey": "e"},
         {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}),
        ("update", {"PartitionKey": "p'1", "RowKey": "f"}, {"mode": UpdateMode.MERGE}),
        ("delete", {"PartitionKey": "p'1", "RowKey": "g"}, {}),
    ]
    body = encode_body("http://h/acct/tbl", "2019-02-02", operations, "batch_1", "changeset_2",
                       "Sat, 21 Nov 2026 10:04:31 GMT")
    message = email.message_from_bytes(b"Content-Type: multipart/mixed; boundary=batch_1\r\n\r\n" + body,
                                       policy=email.policy.HTTP)
    [changeset] = message.get_payload()
    requests = [part.get_payload() for part in changeset.get_payload()]
    assert [part["Content-ID"] for part in changeset.get_payload()] == [str(i) for i in range(6)]
    lines = [r.splitlines()[0] for r in requests]
    assert lines == [
        "POST http://h/acct/tbl HTTP/1.1",
        "PUT http://h/acct/tbl(PartitionKey='p%27%271',RowKey='b%20c') HTTP/1.1",
        "PATCH http://h/acct/tbl(PartitionKey='p%27%271',RowKey='d') HTTP/1.1",
        "PUT http://h/acct/tbl(PartitionKey='p%27%271',RowKey='e') HTTP/1.1",
        "PATCH http://h/acct/tbl(PartitionKey='p%27%271',RowKey='f') HTTP/1.1",
        "DELETE http://h/acct/tbl(PartitionKey='p%27%271',RowKey='g') HTTP/1.1",
    ]
    assert f"If-Match: {etag}" in requests[3] and "If-Match: *" in requests[4] and "If-Match: *" in requests[5]
    assert "If-Match" not in requests[1] and "If-Match" not in requests[2]
    assert all("x-ms-date: Sat, 21 Nov 2026 10:04:31 GMT" in r for r in requests)
    head, _, payload = requests[1].partition("\r\n\r\n")
    assert json.loads(payload) == _add_entity_properties(operations[1][1])
    assert f"Content-Length: {len(payload.strip().encode())}" in head


def test_operations_the_service_would_refuse_are_refused_before_sending():
    def encode(operations):
        return encode_body("http://h/t", "v", operations, "b", "c", "d")

    with pytest.raises(ValueError, match="etag"):
        encode([("update", {"PartitionKey": "p", "RowKey": "r"}, {"match_condition": MatchConditions.IfNotModified})])
    with pytest.raises(ValueError, match="unknown"):
        encode([("merge", {"PartitionKey": "p", "RowKey": "r"}, {})])
    with pytest.raises(ValueError, match="one partition"):
        encode([("delete", {"PartitionKey": "p", "RowKey": "r"}, {}),
                ("delete", {"PartitionKey": "q", "RowKey": "r"}, {})])


ANSWER = (
    "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
    "--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 201 Created\r\nDataServiceVersion: 3.0;\r\nETag: W/\"datetime'2026-11-21T10%3A04%3A33.99Z'\"\r\n\r\n\r\n"
    "--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 204 No Content\r\nETag: W/\"2\"\r\n\r\n\r\n"
    "--changesetresponse_2--\r\n--batchresponse_1--\r\n"
)
REFUSED = (
    "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
    "--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    "HTTP/1.1 412 Precondition Failed\r\nContent-ID: 1\r\n"
    "Content-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n"
    '{"odata.error":{"code":"UpdateConditionNotSatisfied","message":{"lang":"en-US","value":"1:The update '
    'condition specified in the request was not satisfied.\\nRequestId:x"}}}\r\n'
    "--changesetresponse_2--\r\n--batchresponse_1--\r\n"
)


def test_answers_are_read_in_order_with_their_etags():
    parts = decode_body("multipart/mixed; boundary=batchresponse_1", ANSWER)
    assert [p.status for p in parts] == [201, 204]
    assert parts[0].headers["etag"] == "W/\"datetime'2026-11-21T10%3A04%3A33.99Z'\""
    assert parts[1].headers["etag"] == 'W/"2"'


def test_a_refused_operation_is_read_with_its_status_and_code():
    [part] = decode_body('multipart/mixed; boundary="batchresponse_1"', REFUSED.replace("\r\n", "\n"))
    assert part.status == 412
    assert json.loads(part.body)["odata.error"]["code"] == "UpdateConditionNotSatisfied"


@pytest.mark.parametrize(("content_type", "text"), [
    ("application/json", ANSWER),
    ("multipart/mixed; boundary=batchresponse_1", ANSWER.replace("HTTP/1.1 204", "garbage")),
])
def test_an_unreadable_answer_is_refused_not_guessed(content_type, text):
    with pytest.raises(TransactionRefused) as caught:
        decode_body(content_type, text)
    assert caught.value.status == 502
