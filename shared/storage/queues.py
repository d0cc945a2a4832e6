"""Storage queue senders for fan-out work (one message per connection), in the encoding the Functions host reads.

The Functions queue trigger decodes base64 by default (host.json `messageEncoding`), so messages are sent
base64-encoded; a message the host cannot decode would go straight to the poison queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    BinaryBase64EncodePolicy,
    ExponentialRetry,
    QueueClient,
    QueueServiceClient,
)

from shared.errors import ConfigurationError, DependencyUnavailable

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 48 * 1024  # 64 KiB per message, less the base64 growth


class QueueSender:
    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueSender:
        # The SDK's default backoff (15 s, growing) would outlast a function invocation; fail within seconds
        # and let the caller's own retry (the queue, the timer) take over.
        from shared.storage.transport import storage_transport

        options: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 20, "transport": storage_transport(),
                                   "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2)}
        if settings.storage_connection_string:
            service = QueueServiceClient.from_connection_string(settings.storage_connection_string, **options)
        elif settings.storage_account_name:
            from azure.identity import DefaultAzureCredential

            url = f"https://{settings.storage_account_name}.queue.{settings.storage_endpoint_suffix}"
            service = QueueServiceClient(url, credential=DefaultAzureCredential(), **options)
        else:
            raise ConfigurationError("no storage configured for queues")
        return cls(service)

    def _client(self, queue: str) -> QueueClient:
        with self._lock:
            client = self._clients.get(queue)
        if client is not None:
            return client
        client = self._service.get_queue_client(
            queue, message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy())
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        with self._lock:
            self._clients[queue] = client
        return client

    def send(self, queue: str, message: dict[str, Any], *, delay_seconds: int = 0) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        if len(body) > MAX_MESSAGE_BYTES:
            raise ValueError(f"queue message of {len(body)} bytes is over the limit; send a reference instead")
        try:
            self._client(queue).send_message(body, visibility_timeout=delay_seconds or None)
        except AzureError as exc:
            log.warning("queue send failed: %s", type(exc).__name__)
            raise DependencyUnavailable("Queue Storage is unreachable or refused the request") from None
