"""Point reads and queries, read here instead of by the Tables SDK's deserializer.

The SDK turns each answer into generated models and then into entities, property by property: measured as a
tenth of the app's CPU in a room pull and in an export chunk (bench/pull, bench/export), for work that is a
`json.loads` and a few typed values ("Payload format for Table service operations", Table service REST API;
`transactions.from_odata`). The request still goes through the SDK client's own pipeline, so its credential
(shared key or managed identity), retries and headers are unchanged; filters are formatted by the SDK's own
substitution, so they are exactly what `query_entities` would send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient
from azure.data.tables._serialize import _parameter_filter_substitution  # private: as the SDK's query_entities

from shared.storage.transactions import from_odata, key_segment

_HEADERS = {"Accept": "application/json;odata=minimalmetadata", "DataServiceVersion": "3.0"}
_NEXT_PARTITION, _NEXT_ROW = "x-ms-continuation-NextPartitionKey", "x-ms-continuation-NextRowKey"


class Entity(dict[str, Any]):
    """An entity's properties, with its ETag in `metadata` as the SDK's entities have it."""

    metadata: dict[str, Any]


def get(client: TableClient, partition: str, row: str) -> Entity | None:
    """One entity by its keys; None when there is none. Raises the SDK's `AzureError` otherwise."""
    url = (f"{_base(client)}/{client.table_name}(PartitionKey='{key_segment(partition)}',"
           f"RowKey='{key_segment(row)}')")
    response = _send(client, url)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise HttpResponseError(response=response)
    return _entity(json.loads(response.read()))


def query(client: TableClient, query_filter: str, parameters: dict[str, Any] | None = None,
          page_size: int = 1000) -> Iterator[Entity]:
    """The entities matching a filter, a page at a time as the caller iterates."""
    params = {"$filter": _parameter_filter_substitution(parameters, query_filter), "$top": str(page_size)}
    while True:
        response = _send(client, f"{_base(client)}/{client.table_name}()", params)
        if response.status_code != 200:
            raise HttpResponseError(response=response)
        for data in json.loads(response.read()).get("value", []):
            yield _entity(data)
        next_partition, next_row = response.headers.get(_NEXT_PARTITION), response.headers.get(_NEXT_ROW)
        if not next_partition and not next_row:
            return
        params = {**params, "NextPartitionKey": next_partition or "", "NextRowKey": next_row or ""}


def _base(client: TableClient) -> str:
    return f"{client.scheme}://{client._primary_hostname}"  # private: as the SDK's own requests


def _send(client: TableClient, url: str, params: dict[str, str] | None = None) -> Any:
    if params:  # quoted as the SDK's serializer quotes them (no brace is left for the pipeline's URL template)
        url += "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())
    request = HttpRequest("GET", url, headers={**_HEADERS, "x-ms-version": client.api_version})
    # The client's pipeline (private: as the SDK's own operations): credential, retries.
    return client._client.send_request(request, stream=True)


def _entity(data: dict[str, Any]) -> Entity:
    entity = Entity(from_odata(data))
    entity.metadata = {"etag": data.get("odata.etag")}
    return entity
