"""Entity group transactions, written and read here instead of by the Tables SDK's multipart code.

The SDK builds a transaction's body with the `email` package and parses the answer with it too: about half a
millisecond of CPU per operation, measured as most of a room's first pull (600 operations, bench/pull). The wire
format is small and documented ("Performing entity group transactions", Table service REST API), so it is joined
from strings and read with a split. The request still goes through the SDK client's own pipeline, so its
credential (shared key or managed identity), retries and headers are unchanged.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.rest import HttpRequest
from azure.data.tables import EdmType, EntityProperty, TableClient, UpdateMode

Operation = tuple[str, dict[str, Any], dict[str, Any]]  # (create | upsert | update | delete, entity, options)


class TransactionRefused(Exception):
    """The service refused the transaction (nothing of it was applied): the failing operation's status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


@dataclass(frozen=True)
class PartResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: str


def submit(client: TableClient, operations: list[Operation]) -> list[dict[str, Any]]:
    """Send one transaction of one table's partition; each operation's answer metadata (its new `etag`) in order.
    Raises `TransactionRefused`, or the SDK's `AzureError` when the service cannot be reached."""
    host = f"{client.scheme}://{client._primary_hostname}"  # private: as the SDK's own submit_transaction
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    body = encode_body(f"{host}/{client.table_name}", client.api_version, operations, batch, changeset,
                       formatdate(usegmt=True))
    request = HttpRequest("POST", f"{host}/$batch", content=body, headers={
        "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={batch}", "Accept": "application/json"})
    # The client's pipeline (private: as the SDK's own transactions): credential, retries. Streamed, as the SDK
    # does, or its content-decoding policy would try to read the multipart answer as JSON.
    response = client._client.send_request(request, stream=True)
    text = response.read().decode("utf-8", errors="replace")
    if response.status_code != 202:
        raise _refusal(response.status_code, text)
    parts = decode_body(response.headers.get("Content-Type", ""), text)
    for part in parts:
        if not 200 <= part.status < 300:
            raise _refusal(part.status, part.body)
    if len(parts) != len(operations):
        raise TransactionRefused(502, "UnexpectedResponse", f"{len(parts)} answers to {len(operations)} operations")
    return [{"etag": part.headers["etag"]} if "etag" in part.headers else {} for part in parts]


def encode_body(table_url: str, api_version: str, operations: list[Operation], batch: str, changeset: str,
                date: str) -> bytes:
    """The multipart body: one changeset holding one HTTP request per operation, each with the headers the SDK
    gives it (a test holds the two bodies equal but for their boundaries and dates)."""
    out = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
    partitions = {entity["PartitionKey"] for _, entity, _ in operations}
    if len(partitions) > 1:
        raise ValueError("a transaction's operations must all be in one partition")
    for index, (kind, entity, options) in enumerate(operations):
        method, url, headers, payload = _request_line(table_url, kind, entity, options)
        head = [f"{method} {url} HTTP/1.1"]
        if payload is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"x-ms-version: {api_version}", "DataServiceVersion: 3.0", *headers, f"x-ms-date: {date}",
                 f"Date: {date}"]
        out.append(f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                   f"Content-ID: {index}\r\n\r\n" + "\r\n".join(head) + "\r\n\r\n")
        if payload is not None:
            out.append(payload.decode())
        out.append("\r\n")
    out.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    return "".join(out).encode()


def _request_line(table_url: str, kind: str, entity: dict[str, Any],
                  options: dict[str, Any]) -> tuple[str, str, list[str], bytes | None]:
    partition, row = key_segment(entity["PartitionKey"]), key_segment(entity["RowKey"])
    keyed = f"{table_url}(PartitionKey='{partition}',RowKey='{row}')"
    if kind == "create":
        return "POST", table_url, ["Accept: application/json;odata=minimalmetadata"], \
            odata_json(entity)
    if kind == "delete":
        return "DELETE", keyed, ["Accept: application/json;odata=minimalmetadata", f"If-Match: {_if_match(options)}"], \
            None
    mode = options.get("mode", UpdateMode.MERGE)
    method = "PUT" if mode == UpdateMode.REPLACE else "PATCH"
    headers = ["Accept: application/json"]
    if kind == "update":
        headers.append(f"If-Match: {_if_match(options)}")
    elif kind != "upsert":
        raise ValueError(f"unknown transaction operation {kind!r}")
    return method, keyed, headers, odata_json(entity)


def _if_match(options: dict[str, Any]) -> str:
    if options.get("match_condition") == MatchConditions.IfNotModified:
        if not options.get("etag"):
            raise ValueError("IfNotModified needs an etag")
        return str(options["etag"])
    return "*"


def key_segment(value: str) -> str:
    """A key as it goes in a URL's `(PartitionKey='...',RowKey='...')`: quotes doubled, then percent-encoded."""
    if _PLAIN_KEY.fullmatch(value):  # nothing to escape (most keys): quote() is slow
        return value
    return quote(value.replace("'", "''"), safe="")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.~-]*")


def odata_json(entity: dict[str, Any]) -> bytes:
    """The entity as the Table service's JSON, each property typed as the SDK types it (a test holds the two
    equal): strings, doubles, 64-bit integers, dates and binaries annotated; booleans and 32-bit integers not."""
    out: dict[str, Any] = {}
    for name, raw in entity.items():
        if type(raw) is str:  # most properties: no type to work out
            out[name], out[f"{name}@odata.type"] = raw, "Edm.String"
            continue
        value, edm = (raw.value, EdmType(raw.edm_type)) if isinstance(raw, EntityProperty) else (raw, None)
        if value is None:
            continue
        if edm is None:
            edm = _edm_of(name, value)
        if edm == EdmType.INT64:
            out[name], out[f"{name}@odata.type"] = str(int(value)), "Edm.Int64"
        elif edm == EdmType.INT32:
            out[name] = int(value)
        elif edm == EdmType.BOOLEAN:
            out[name] = bool(value)
        elif edm == EdmType.DOUBLE:
            out[name], out[f"{name}@odata.type"] = float(value), "Edm.Double"
        elif edm == EdmType.DATETIME:
            out[name] = value if isinstance(value, str) else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out[f"{name}@odata.type"] = "Edm.DateTime"
        elif edm == EdmType.BINARY:
            data = value.encode() if isinstance(value, str) else value
            out[name], out[f"{name}@odata.type"] = base64.b64encode(data).decode(), "Edm.Binary"
        elif edm == EdmType.STRING:
            out[name], out[f"{name}@odata.type"] = str(value), "Edm.String"
        else:
            raise TypeError(f"{name}: {edm} properties are not written by this project")
    return json.dumps(out).encode()


def from_odata(data: dict[str, Any]) -> dict[str, Any]:
    """An entity as `odata_json` writes it (and the Table service answers it) back into the values the SDK gives:
    annotated 64-bit integers, doubles, dates and binaries typed again; the service's own `odata.*` and
    `Timestamp` left out."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name.startswith("odata.") or "@odata." in name or name == "Timestamp":
            continue
        edm = data.get(f"{name}@odata.type")
        if edm == "Edm.Int64":
            value = int(value)
        elif edm == "Edm.Double":
            value = float(value)
        elif edm == "Edm.DateTime":
            value = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
        elif edm == "Edm.Binary":
            value = base64.b64decode(value)
        out[name] = value
    return out


def _edm_of(name: str, value: Any) -> EdmType:
    if isinstance(value, bool):
        return EdmType.BOOLEAN
    if isinstance(value, int):
        if not -2**31 <= value < 2**31:
            raise TypeError(f"{name}: {value} does not fit a 32-bit integer; give it as an Int64 EntityProperty")
        return EdmType.INT32
    if isinstance(value, float):
        return EdmType.DOUBLE
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name}: naive datetime; use UTC-aware datetimes")
        return EdmType.DATETIME
    if isinstance(value, bytes):
        return EdmType.BINARY
    if isinstance(value, str):
        return EdmType.STRING
    raise TypeError(f"{name}: {type(value).__name__} is not a table property type")


def decode_body(content_type: str, text: str) -> list[PartResponse]:
    """The answers in a batch response: each HTTP response inside its changeset (or in the batch itself, when the
    service refuses the request as a whole)."""
    boundary = _boundary(content_type)
    if not boundary:
        raise TransactionRefused(502, "UnexpectedResponse", "the batch response has no multipart boundary")
    text = text.replace("\r\n", "\n")  # JSON bodies hold no raw line breaks
    parts: list[PartResponse] = []
    for chunk in _split(text, boundary):
        head, _, rest = chunk.partition("\n\n")
        inner = _boundary(_headers(head).get("content-type", ""))
        if inner:
            parts.extend(_http_response(sub.partition("\n\n")[2]) for sub in _split(rest, inner))
        else:
            parts.append(_http_response(rest))
    return parts


def _split(text: str, boundary: str) -> list[str]:
    """The parts between `--boundary` lines, without the preamble and what follows the closing `--boundary--`."""
    chunks = text.split(f"--{boundary}")[1:]
    return [c.removeprefix("\n") for c in chunks if not c.startswith("--")]


def _http_response(text: str) -> PartResponse:
    head, _, body = text.partition("\n\n")
    status_line, _, header_text = head.partition("\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise TransactionRefused(502, "UnexpectedResponse", f"unreadable part status line {status_line[:80]!r}")
    return PartResponse(int(fields[1]), _headers(header_text), body.strip())


def _headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _boundary(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    return ""


def _refusal(status: int, body: str) -> TransactionRefused:
    """Table service errors are `{"odata.error": {"code", "message": {"value"}}}`; the message starts with the
    failing operation's index."""
    try:
        error = json.loads(body)["odata.error"]
        return TransactionRefused(status, str(error.get("code", "")), str(error.get("message", {}).get("value", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return TransactionRefused(status, "", body[:200])
