"""Queue sender against Azurite: messages arrive base64-encoded, as the Functions queue trigger expects."""

import base64
import json
import uuid

import pytest
from azure.storage.queue import QueueClient

from shared.errors import DependencyUnavailable
from shared.settings import Settings
from shared.storage.queues import QueueSender


def test_message_is_json_in_base64_and_the_queue_is_created(storage_connection_string):
    queue = f"q-{uuid.uuid4().hex[:8]}"
    sender = QueueSender.from_settings(Settings.from_env({}, storage_connection_string=storage_connection_string))
    sender.send(queue, {"connection": "sys1/space/7", "n": 1})
    raw = QueueClient.from_connection_string(storage_connection_string, queue).receive_message()
    assert json.loads(base64.b64decode(raw.content)) == {"connection": "sys1/space/7", "n": 1}


def test_oversized_message_is_refused(storage_connection_string):
    sender = QueueSender.from_settings(Settings.from_env({}, storage_connection_string=storage_connection_string))
    with pytest.raises(ValueError, match="over the limit"):
        sender.send("q-big", {"blob": "x" * 60_000})


def test_outage_is_a_domain_error():
    from devstack.azurite import connection_string
    from devstack.ports import free_port

    dead = connection_string(free_port(), free_port())
    sender = QueueSender.from_settings(Settings.from_env({}, storage_connection_string=dead))
    with pytest.raises(DependencyUnavailable, match="Queue Storage"):
        sender.send("q-dead", {"a": 1}, )
