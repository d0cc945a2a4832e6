"""The transactionId key: created in Key Vault on first use, then read from memory (no vault I/O per create), and
shared by every process of a deployment (a fresh process derives the same transactionIds)."""

import base64
import uuid

from shared.export.content import transaction_id
from shared.models import Item
from shared.secrets import TXN_KEY_BYTES, SecretStore, TransactionKey


def test_created_on_first_use_then_cached_and_shared(base_settings, key_vault):
    store = SecretStore.from_settings(base_settings)
    name = f"txn-key-{uuid.uuid4().hex[:8]}"
    first = TransactionKey(store, name)
    seen = key_vault.requests_seen
    key = first()
    assert key_vault.requests_seen > seen  # looked for it, created it, read it back
    assert len(key) == TXN_KEY_BYTES and base64.b64decode(store.get(name).value) == key
    seen = key_vault.requests_seen
    assert [first() for _ in range(20)] == [key] * 20
    assert key_vault.requests_seen == seen  # cached: no Key Vault call per create

    other_process = TransactionKey(SecretStore.from_settings(base_settings), name)
    assert other_process() == key  # read, not created again
    item = Item(system="s", kind="space", subject_id="r1", item_id="b1")
    assert transaction_id(other_process(), item, "o1", 0) == transaction_id(key, item, "o1", 0)
