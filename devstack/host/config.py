"""What the local host reads from host.json and app settings, parsed once so the rest of the host sees plain values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SETTING = re.compile(r"%([^%\s]+)%")
_TIMESPAN = re.compile(r"(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)")


def resolve_settings(expression: str, env: Mapping[str, str], what: str) -> str:
    """Expand `%NAME%` app-setting references, as the Functions host does for schedules and queue names.

    A reference to a missing setting is an indexing error in the real host, so it is one here too.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"{what}: app setting '{name}' referenced as %{name}% is not set")
        return env[name]

    return _SETTING.sub(lookup, expression)


def parse_timespan(value: Any, what: str) -> float:
    """Seconds from a host.json TimeSpan (`hh:mm:ss[.fff]`, `d.hh:mm:ss`) or a number of milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a TimeSpan, got {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0
    match = _TIMESPAN.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"{what}: expected a TimeSpan like 00:00:10, got {value!r}")
    days = int(match.group("days") or 0)
    return days * 86400 + int(match.group("h")) * 3600 + int(match.group("m")) * 60 + float(match.group("s"))


@dataclass(frozen=True)
class QueueOptions:
    """`extensions.queues` with the Functions host's defaults (newBatchThreshold as on a one-core machine)."""

    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    base64: bool = True
    # How long a received message stays hidden, renewed while its function runs (the real host: 10 minutes).
    # A crashed host's messages come back after it; tests shorten it with DEVSTACK_QUEUE_LEASE_SECONDS.
    lease_seconds: float = 600.0

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> QueueOptions:
        batch_size = int(section.get("batchSize", 16))
        if not 1 <= batch_size <= 32:
            raise ValueError(f"extensions.queues.batchSize must be 1..32, got {batch_size}")
        threshold = int(section.get("newBatchThreshold", batch_size // 2))
        max_dequeue = int(section.get("maxDequeueCount", 5))
        if threshold < 0 or max_dequeue < 1:
            raise ValueError("extensions.queues: newBatchThreshold must be >= 0 and maxDequeueCount >= 1")
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"extensions.queues.messageEncoding must be base64 or none, got {encoding!r}")
        polling = parse_timespan(section.get("maxPollingInterval", "00:01:00"), "extensions.queues.maxPollingInterval")
        return cls(
            max_polling_interval=max(polling, 0.1),  # the real host's floor is 100 ms
            visibility_timeout=parse_timespan(
                section.get("visibilityTimeout", "00:00:00"), "extensions.queues.visibilityTimeout"
            ),
            batch_size=batch_size,
            new_batch_threshold=threshold,
            max_dequeue_count=max_dequeue,
            base64=encoding == "base64",
        )


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str
    queues: QueueOptions

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any]) -> HostConfig:
        extensions = host_json.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = http.get("routePrefix", "api")
        return cls(
            route_prefix=str(prefix if prefix is not None else "api").strip("/"),
            queues=QueueOptions.from_section(extensions.get("queues") or {}),
        )
