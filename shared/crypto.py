"""Encryption at rest for what must not sit in tables in clear (MSAL token caches).

AES-256-GCM with a data key held in Key Vault. Each ciphertext records the key version that sealed it, so the
key can rotate (a new version in the vault) while old rows stay readable; rows are re-sealed with the current
key the next time they are written. Associated data binds a ciphertext to its row, so a ciphertext copied into
another row does not open.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import DecryptionFailed, SecretNotFound
from shared.secrets import SecretStore

FORMAT = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
CURRENT_KEY_TTL = 300.0  # seconds before the "latest" key version is looked up again (picks up rotation)


class DataKeyring:
    """Data keys by version, read from the secret store and kept in memory (versions are immutable)."""

    def __init__(self, store: SecretStore, secret_name: str) -> None:
        self._store = store
        self._name = secret_name
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._current: tuple[str, float] | None = None  # (version, looked up at)

    def current(self) -> tuple[str, bytes]:
        with self._lock:
            if self._current and time.monotonic() - self._current[1] < CURRENT_KEY_TTL:
                version = self._current[0]
                return version, self._keys[version]
        try:
            secret = self._store.get(self._name)
        except SecretNotFound:
            # First start of a deployment: create the key. Two instances racing here create two versions;
            # both stay readable because every ciphertext names its version.
            version = self._store.set(self._name, _encode_key(os.urandom(KEY_BYTES)), content_type="aes-256-gcm key")
            secret = self._store.get(self._name, version)
        key = _decode_key(secret.value)
        with self._lock:
            self._keys[secret.version] = key
            self._current = (secret.version, time.monotonic())
        return secret.version, key

    def by_version(self, version: str) -> bytes:
        with self._lock:
            key = self._keys.get(version)
        if key is not None:
            return key
        try:
            secret = self._store.get(self._name, version)
        except SecretNotFound:
            raise DecryptionFailed("the data key version that sealed this value no longer exists") from None
        key = _decode_key(secret.value)
        with self._lock:
            self._keys[version] = key
        return key

    def rotate(self) -> str:
        """Create a new key version; new writes use it at once in this process, elsewhere within the TTL."""
        version = self._store.set(self._name, _encode_key(os.urandom(KEY_BYTES)), content_type="aes-256-gcm key")
        with self._lock:
            self._current = None
        return version


class Cipher:
    def __init__(self, keyring: DataKeyring) -> None:
        self._keyring = keyring

    def seal(self, plaintext: bytes, context: str) -> str:
        """Encrypt; `context` (e.g. the row's keys) must be given again to open."""
        version, key = self._keyring.current()
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(version, context))
        return ".".join((FORMAT, version, _b64(nonce), _b64(ciphertext)))

    def open(self, sealed: str, context: str) -> bytes:
        parts = sealed.split(".")
        if len(parts) != 4 or parts[0] != FORMAT:
            raise DecryptionFailed("not a sealed value of a known format")
        _, version, nonce, ciphertext = parts
        key = self._keyring.by_version(version)
        try:
            return AESGCM(key).decrypt(_unb64(nonce), _unb64(ciphertext), _aad(version, context))
        except (InvalidTag, ValueError):
            raise DecryptionFailed("sealed value failed authentication (tampered, or wrong row)") from None

    @staticmethod
    def key_version(sealed: str) -> str:
        """Which key version sealed a value: lets a sweep find rows still under an old key."""
        return sealed.split(".", 2)[1]


def _aad(version: str, context: str) -> bytes:
    return f"{FORMAT}|{version}|{context}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise DecryptionFailed("the data key in Key Vault is not base64") from None
    if len(key) != KEY_BYTES:
        raise DecryptionFailed("the data key in Key Vault is not 256 bits")
    return key
