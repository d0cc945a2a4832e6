"""The identifiers that make writing an event safe to repeat, and the header that keeps event IDs stable."""

import uuid

from shared.export.content import MARKER_ID, carries_marker, marker, marker_lookup_query, transaction_id
from shared.graph.client import with_immutable_ids
from shared.models import Item

ITEM = Item(system="sys", kind="space", subject_id="room-1", item_id="b'1")


def test_transaction_id_is_keyed_stable_per_generation_and_uuid_shaped():
    key, other = b"k" * 32, b"o" * 32
    first = transaction_id(key, ITEM, "o1", 0)
    assert str(uuid.UUID(first)) == first
    assert transaction_id(key, ITEM, "o1", 0) == first  # a retry repeats it
    assert transaction_id(key, ITEM, "o1", 1) != first  # a re-creation does not
    assert transaction_id(key, ITEM, "o2", 0) != first
    assert transaction_id(other, ITEM, "o1", 0) != first  # without the key it cannot be derived
    namespace = uuid.UUID("0b7f3b8e-5e64-4a1e-a1a3-5a8f0d6f2c41")  # the unkeyed derivation this replaced
    assert first != str(uuid.uuid5(namespace, f"{marker(ITEM, 'o1')};0"))


def test_marker_look_up_filters_on_the_extended_property_and_checks_exactly():
    value = marker(ITEM, "o1")
    query = marker_lookup_query(value)
    assert "transactionId%20eq" not in query and "singleValueExtendedProperties%2FAny" in query
    assert "b%27%271" in query  # the quote in the item ID is doubled, as OData wants, then URL-encoded
    event = {"id": "x", "singleValueExtendedProperties": [{"id": MARKER_ID, "value": value}]}
    assert carries_marker(event, value)
    assert carries_marker({"singleValueExtendedProperties": [{"id": MARKER_ID.replace("6f1f4e0a", "6F1F4E0A"),
                                                             "value": value}]}, value)  # GUID in any case
    assert not carries_marker({"singleValueExtendedProperties": [{"id": MARKER_ID, "value": value.upper()}]}, value)
    assert not carries_marker({"singleValueExtendedProperties": [{"id": MARKER_ID.lower(), "value": value}]}, value)
    assert not carries_marker({"id": "x"}, value)


def test_every_request_asks_for_immutable_ids_next_to_its_own_preferences():
    assert with_immutable_ids(None) == {"Prefer": 'IdType="ImmutableId"'}
    merged = with_immutable_ids({"Prefer": 'outlook.timezone="UTC"', "Accept": "application/json"})
    assert merged == {"Prefer": 'outlook.timezone="UTC", IdType="ImmutableId"', "Accept": "application/json"}
    assert with_immutable_ids({"prefer": 'IdType="ImmutableId"'}) == {"prefer": 'IdType="ImmutableId"'}
