"""Queue triggers against a real Azurite queue service: settle on success, retry on failure, poison at the limit."""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from collections.abc import Callable

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devstack.host import LocalFunctionsHost
from devstack.ports import free_port

FAST_QUEUES = {
    "maxPollingInterval": "00:00:00.2",
    "visibilityTimeout": "00:00:01",
    "maxDequeueCount": 3,
    "batchSize": 4,
    "newBatchThreshold": 2,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def start_host(app: func.FunctionApp, connection_string: str, env: dict, queues: dict) -> LocalFunctionsHost:
    host = LocalFunctionsHost(app, host_json={"extensions": {"queues": queues}}, env=env, function_key="fk",
                              master_key="mk", storage_connection_string=connection_string)
    host.start(port=free_port())
    return host


def raw_client(connection_string: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(connection_string, name)


def test_message_is_processed_and_deleted(storage_connection_string: str) -> None:
    queue = unique("work")
    app = func.FunctionApp()
    seen: list[func.QueueMessage] = []
    done = threading.Event()

    @app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
    def work(msg: func.QueueMessage) -> None:
        seen.append(msg)
        done.set()

    host = start_host(app, storage_connection_string, {"WORK_QUEUE": queue}, FAST_QUEUES)
    try:
        sender = QueueClient.from_connection_string(storage_connection_string, queue,
                                                    message_encode_policy=TextBase64EncodePolicy())
        sent = sender.send_message('{"connection": "c1"}')  # base64 on the wire, as the host expects by default
        assert done.wait(10)
        assert wait_until(lambda: not raw_client(storage_connection_string, queue).peek_messages())
    finally:
        host.stop()
    [message] = seen
    assert message.get_json() == {"connection": "c1"}
    assert message.id == sent.id
    assert message.dequeue_count == 1
    assert message.insertion_time is not None and message.expiration_time > message.insertion_time
    assert message.pop_receipt


def test_failing_message_is_retried_then_poisoned(storage_connection_string: str) -> None:
    queue = unique("flaky")
    app = func.FunctionApp()
    attempts: list[tuple[int, float]] = []

    @app.queue_trigger(arg_name="msg", queue_name=queue, connection="AzureWebJobsStorage")
    def flaky(msg: func.QueueMessage) -> None:
        attempts.append((msg.dequeue_count, time.monotonic()))
        raise RuntimeError("always fails")

    host = start_host(app, storage_connection_string, {}, FAST_QUEUES)
    poison = raw_client(storage_connection_string, f"{queue}-poison")
    try:
        body = base64.b64encode(b"payload-1").decode()
        raw_client(storage_connection_string, queue).send_message(body)
        assert wait_until(lambda: poison.get_queue_properties().approximate_message_count == 1
                          if _exists(poison) else False, timeout=15)
    finally:
        host.stop()
    assert [count for count, _ in attempts] == [1, 2, 3]  # maxDequeueCount runs, then no more
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps)  # the message stayed invisible for visibilityTimeout after each failure
    [moved] = poison.peek_messages()
    assert moved.content == body  # same encoding as the original
    assert not raw_client(storage_connection_string, queue).peek_messages()


def test_output_binding_plain_encoding_and_batches(storage_connection_string: str) -> None:
    source, target = unique("in"), unique("out")
    app = func.FunctionApp()
    running = 0
    peak = 0
    lock = threading.Lock()

    @app.queue_trigger(arg_name="msg", queue_name=source, connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
    def relay(msg: func.QueueMessage, out: func.Out[str]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        with lock:
            running -= 1
        out.set(msg.get_body().decode().upper())

    settings = {**FAST_QUEUES, "messageEncoding": "none", "batchSize": 2, "newBatchThreshold": 1}
    host = start_host(app, storage_connection_string, {"OUT_QUEUE": target}, settings)
    results = raw_client(storage_connection_string, target)
    try:
        for word in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"):
            raw_client(storage_connection_string, source).send_message(word)
        assert wait_until(lambda: _exists(results) and results.get_queue_properties().approximate_message_count == 6)
    finally:
        host.stop()
    bodies = sorted(m.content for m in results.receive_messages(messages_per_page=32))
    assert bodies == ["ALPHA", "BETA", "DELTA", "EPSILON", "GAMMA", "ZETA"]
    assert 2 <= peak <= 3  # batchSize + newBatchThreshold bounds concurrency


def _exists(client: QueueClient) -> bool:
    try:
        client.get_queue_properties()
    except ResourceNotFoundError:
        return False
    return True

