"""One request shape for top-level HTTP requests and `$batch` items, so both run through the same pipeline
(authentication, throttling, faults, routing) and a batch item behaves exactly like the request it stands for."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from simulator.graph.errors import GraphError
from simulator.graph.timezones import known_zone

JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"


@dataclass
class GraphRequest:
    method: str
    path: str  # below /v1.0, decoded, e.g. "/users/room@contoso.com/events"
    query: dict[str, str]  # first value per name; names kept as sent ($select, startDateTime, ...)
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str  # "https://127.0.0.1:8443/v1.0"
    request_id: str
    client_request_id: str
    in_batch: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        """Query parameters are case-insensitive in Graph (startdatetime works as well as startDateTime)."""
        if name in self.query:
            return self.query[name]
        wanted = name.lower()
        return next((value for key, value in self.query.items() if key.lower() == wanted), None)

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            raise GraphError(400, "UnableToDeserializePostBody", "The request body is empty.")
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise GraphError(400, "UnableToDeserializePostBody", "were unable to deserialize") from None
        if not isinstance(value, dict):
            raise GraphError(400, "UnableToDeserializePostBody", "The request body must be a JSON object.")
        return value

    @property
    def target(self) -> str:
        """Path and query as the client wrote them below /v1.0, for fault filters and logs."""
        if not self.query:
            return "/v1.0" + self.path
        return "/v1.0" + self.path + "?" + "&".join(f"{k}={v}" for k, v in self.query.items())

    def prefer(self) -> Prefer:
        return Prefer.parse(self.header("prefer"))


@dataclass
class GraphResponse:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Prefer:
    """The `Prefer` preferences Graph's calendar APIs honour."""

    time_zone: str | None = None
    max_page_size: int | None = None
    # `IdType="ImmutableId"`: "This header only applies to the request it is included with"
    # (https://learn.microsoft.com/graph/outlook-immutable-id); a $batch item has only its own headers.
    immutable_ids: bool = False

    _TOKEN = re.compile(r'\s*([\w.\-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,;]*))?\s*')

    @classmethod
    def parse(cls, header: str | None) -> Prefer:
        if not header:
            return cls()
        tz: str | None = None
        size: int | None = None
        immutable = False
        for part in header.split(","):
            match = cls._TOKEN.match(part.split(";")[0])
            if not match:
                continue
            name, raw = match.group(1).lower(), (match.group(2) or "").strip().strip('"')
            if name == "outlook.timezone" and known_zone(raw):
                tz = raw
            elif name == "odata.maxpagesize" and raw.isdigit() and int(raw) > 0:
                size = int(raw)
            elif name == "idtype" and raw == "ImmutableId":
                immutable = True
        return cls(tz, size, immutable)

    def applied(self) -> dict[str, str]:
        parts = []
        if self.time_zone:
            parts.append(f'outlook.timezone="{self.time_zone}"')
        if self.max_page_size:
            parts.append(f"odata.maxpagesize={self.max_page_size}")
        return {"Preference-Applied": ", ".join(parts)} if parts else {}


def split_relative_url(url: str) -> tuple[str, dict[str, str]]:
    """A `$batch` item URL ("/me/events?$top=5", leading slash optional) -> decoded path and query."""
    if url.lower().startswith(("http://", "https://")):
        raise GraphError(400, "BadRequest", "Batch request URLs must be relative to the service root.")
    parts = urlsplit("/" + url.lstrip("/"))
    path = "/".join(unquote(seg) for seg in parts.path.split("/"))
    if path.lower().startswith("/v1.0/"):
        path = path[5:]
    return path, parse_query(parts.query)


def parse_query(raw: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def link(base_url: str, path: str, params: dict[str, str]) -> str:
    """An absolute nextLink/deltaLink as Graph writes them (path segments and values URL-encoded)."""
    encoded_path = "/".join(quote(seg, safe="@=") for seg in path.split("/"))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"{base_url}{encoded_path}" + (f"?{query}" if query else "")
