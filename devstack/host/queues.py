"""Queue triggers and queue output bindings against Storage queues (Azurite locally), with the host's semantics.

As the Functions queue extension does: poll with exponential backoff up to maxPollingInterval; fetch up to
batchSize messages and fetch again once no more than newBatchThreshold are still running; delete on success;
on failure make the message visible again after visibilityTimeout; once a message has failed maxDequeueCount
times, copy it unchanged to `{queue}-poison` and delete it. Bodies are base64 on the wire unless messageEncoding
is `none`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.core.pipeline.transport import RequestsTransport
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as StorageQueueMessage

from devstack.host.catalog import FunctionSpec
from devstack.host.config import QueueOptions
from devstack.host.invoke import FunctionFailed
from shared.storage.transport import pooled_transport

logger = logging.getLogger("devstack.host")
MIN_POLL_SECONDS = 0.1

Run = Callable[[FunctionSpec, FunctionQueueMessage, str], object]


def queue_client(connection_string: str, queue_name: str) -> QueueClient:
    """No SDK retries: the listener has its own backoff, and retries would delay a prompt stop. One session for
    the host's clients, not reading proxy settings from the environment on every poll, as the app's."""
    return QueueClient.from_connection_string(connection_string, queue_name, retry_total=0,
                                              connection_timeout=5, read_timeout=30, transport=_transport())


@functools.cache
def _transport() -> RequestsTransport:
    return pooled_transport()  # not the app's: its requests are not the app's to count


def ensure_queue(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


def encode(body: bytes, *, use_base64: bool) -> str:
    return base64.b64encode(body).decode("ascii") if use_base64 else body.decode("utf-8")


def decode(content: str, *, use_base64: bool) -> bytes:
    if not use_base64:
        return content.encode("utf-8")
    return base64.b64decode("".join(content.split()), validate=True)


class QueueSender:
    """Sends output-binding messages; creates each queue on first use like the host's output binding."""

    def __init__(self, connection_string: str, *, use_base64: bool) -> None:
        self._connection_string = connection_string
        self._base64 = use_base64
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    def __call__(self, queue_name: str, messages: list[bytes]) -> None:
        with self._lock:
            client = self._clients.get(queue_name)
            if client is None:
                client = queue_client(self._connection_string, queue_name)
                ensure_queue(client)
                self._clients[queue_name] = client
        for body in messages:
            client.send_message(encode(body, use_base64=self._base64))


class QueueListener:
    def __init__(self, spec: FunctionSpec, queue_name: str, options: QueueOptions, connection_string: str,
                 run: Run, stop: threading.Event) -> None:
        self.spec = spec
        self.queue_name = queue_name
        self._options = options
        self._run = run
        self._stop = stop
        self._client = queue_client(connection_string, queue_name)
        self._poison = queue_client(connection_string, f"{queue_name}-poison")
        self._pool = ThreadPoolExecutor(max_workers=options.batch_size + options.new_batch_threshold,
                                        thread_name_prefix=f"devstack-queue-{spec.name}")
        self._inflight = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._poll, name=f"devstack-poll-{spec.name}", daemon=True)

    def start(self) -> None:
        ensure_queue(self._client)
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Called after the shared stop event is set: stop polling, give running functions `timeout` to finish."""
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._changed:
            self._changed.wait_for(lambda: self._inflight == 0, timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _poll(self) -> None:
        delay = MIN_POLL_SECONDS
        threshold = self._options.new_batch_threshold
        while not self._stop.is_set():
            with self._changed:
                self._changed.wait_for(lambda: self._inflight <= threshold or self._stop.is_set())
            if self._stop.is_set():
                return
            try:
                messages = self._receive()
            except AzureError as exc:  # storage down or restarting: back off and try again
                logger.warning("Queue '%s': receive failed (%s); retrying", self.queue_name, type(exc).__name__)
                messages = []
            if messages:
                delay = MIN_POLL_SECONDS
                with self._changed:
                    self._inflight += len(messages)
                for message in messages:
                    self._pool.submit(self._process, message)
                continue
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._options.max_polling_interval)

    def _receive(self) -> list[StorageQueueMessage]:
        pages = self._client.receive_messages(messages_per_page=self._options.batch_size,
                                              visibility_timeout=round(self._options.lease_seconds)).by_page()
        return list(next(pages, []))

    def _process(self, message: StorageQueueMessage) -> None:
        try:
            self._settle(message)
        except Exception:
            logger.exception("Queue '%s': could not settle message %s", self.queue_name, message.id)
        finally:
            with self._changed:
                self._inflight -= 1
                self._changed.notify_all()

    def _settle(self, message: StorageQueueMessage) -> None:
        count = int(message.dequeue_count or 1)
        limit = self._options.max_dequeue_count
        if count > limit:  # failed earlier without being settled (host stopped mid-run): do not run it again
            self._to_poison(message)
            return
        lease = _Lease(self._client, message, self._options.lease_seconds)
        try:
            succeeded = self._invoke(message, count)
        finally:
            lease.stop()
        message.pop_receipt = lease.pop_receipt
        if succeeded:
            self._client.delete_message(message.id, message.pop_receipt)
        elif count >= limit:
            self._to_poison(message)
        else:
            self._client.update_message(message.id, message.pop_receipt,
                                        visibility_timeout=round(self._options.visibility_timeout))

    def _invoke(self, message: StorageQueueMessage, count: int) -> bool:
        try:
            body = decode(message.content, use_base64=self._options.base64)
        except (binascii.Error, ValueError):
            logger.warning("Queue '%s': message %s is not valid base64; set messageEncoding to none for plain "
                           "text", self.queue_name, message.id)
            return False
        trigger = FunctionQueueMessage(
            id=message.id, body=body, dequeue_count=count, expiration_time=message.expires_on,
            insertion_time=message.inserted_on, time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        try:
            self._run(self.spec, trigger, f"queue={self.queue_name}, dequeue_count={count}")
        except FunctionFailed:
            return False
        return True

    def _to_poison(self, message: StorageQueueMessage) -> None:
        logger.warning("Queue '%s': message %s reached maxDequeueCount %d; moving it to '%s-poison'",
                       self.queue_name, message.id, self._options.max_dequeue_count, self.queue_name)
        ensure_queue(self._poison)
        self._poison.send_message(message.content)
        self._client.delete_message(message.id, message.pop_receipt)


class _Lease:
    """Keeps a message hidden while its function runs, as the real host does: the visibility is extended every
    half lease, and the newest pop receipt is the one that can delete the message."""

    def __init__(self, client: QueueClient, message: StorageQueueMessage, seconds: float) -> None:
        self._client = client
        self._id = message.id
        self.pop_receipt = message.pop_receipt
        self._seconds = max(1, round(seconds))
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"devstack-lease-{message.id[:8]}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._done.wait(self._seconds / 2):
            try:
                receipt = self._client.update_message(self._id, self.pop_receipt, visibility_timeout=self._seconds)
            except Exception as exc:  # noqa: BLE001 - a lost lease only risks a second delivery
                logger.warning("Queue lease renewal failed (%s)", type(exc).__name__)
                return
            self.pop_receipt = receipt.pop_receipt

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)
