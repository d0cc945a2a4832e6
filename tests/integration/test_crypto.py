"""Encryption at rest with the data key held in (the local) Key Vault."""

import uuid

import pytest

from shared.crypto import Cipher, DataKeyring
from shared.errors import DecryptionFailed
from shared.secrets import SecretStore


@pytest.fixture
def keyring(base_settings) -> DataKeyring:
    return DataKeyring(SecretStore.from_settings(base_settings), f"data-key-{uuid.uuid4().hex[:8]}")


def test_key_is_created_on_first_use_and_values_round_trip(keyring):
    cipher = Cipher(keyring)
    sealed = cipher.seal(b'{"RefreshToken": {}}', "connections|sys1|user:42")
    assert b"RefreshToken" not in sealed.encode()
    assert cipher.open(sealed, "connections|sys1|user:42") == b'{"RefreshToken": {}}'


def test_same_plaintext_seals_differently_each_time(keyring):
    cipher = Cipher(keyring)
    assert cipher.seal(b"x", "ctx") != cipher.seal(b"x", "ctx")


def test_ciphertext_moved_to_another_row_does_not_open(keyring):
    cipher = Cipher(keyring)
    sealed = cipher.seal(b"token cache", "row-a")
    with pytest.raises(DecryptionFailed, match="wrong row"):
        cipher.open(sealed, "row-b")


def test_tampered_ciphertext_does_not_open(keyring):
    cipher = Cipher(keyring)
    sealed = cipher.seal(b"token cache", "row-a")
    head, body = sealed.rsplit(".", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(DecryptionFailed):
        cipher.open(f"{head}.{flipped}", "row-a")
    with pytest.raises(DecryptionFailed, match="format"):
        cipher.open("garbage", "row-a")


def test_rotation_keeps_old_values_readable_and_seals_new_ones_with_the_new_key(keyring, base_settings):
    cipher = Cipher(keyring)
    old = cipher.seal(b"old", "row")
    new_version = keyring.rotate()
    new = cipher.seal(b"new", "row")
    assert Cipher.key_version(new) == new_version != Cipher.key_version(old)
    # A fresh process (empty key cache) opens both, fetching each version from the vault.
    fresh = Cipher(DataKeyring(SecretStore.from_settings(base_settings), keyring._name))
    assert fresh.open(old, "row") == b"old"
    assert fresh.open(new, "row") == b"new"


def test_unknown_key_version_is_a_clear_failure(keyring):
    cipher = Cipher(keyring)
    sealed = cipher.seal(b"x", "row")
    _, _old_version, nonce, body = sealed.split(".")
    with pytest.raises(DecryptionFailed, match="no longer exists"):
        cipher.open(f"v1.{'0' * 32}.{nonce}.{body}", "row")
