"""AES-256-GCM payload codec: every payload leaves the process encrypted, with its key ID.

Temporal stores what the codec returns: the server, its database and the Web UI see only
``binary/encrypted`` payloads. The original payload (metadata and data) is serialised and
sealed whole, so even its encoding is hidden. Each payload records the ID of the key that
sealed it in its metadata, so a rotated-out key can still open old payloads, and a process
without that key says which one it lacks instead of failing on garbage. The key ID is also
the cipher's associated data: a payload relabelled with another ID fails to open.
"""

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from constants import ENCRYPTION_KEY_FILE_ENV, ENCRYPTION_KEYS_ENV
from encryption.keys import KeyRing

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12  # GCM's standard nonce; random per payload


class UndecryptablePayloadError(Exception):
    """A payload this process cannot decrypt; the message names the key ID it needs."""


class EncryptionCodec(PayloadCodec):
    """Encrypts with the ring's first key, decrypts with any of its keys.

    With no keys (encryption off) it passes payloads through, and still names the key an
    encrypted payload needs, rather than leaving the SDK to report an unknown encoding.
    """

    def __init__(self, ring: KeyRing | None) -> None:
        self._ciphers = {key_id: AESGCM(key) for key_id, key in (ring.keys if ring else {}).items()}
        self._encrypting = ring.encrypting if ring else None

    @property
    def encrypts(self) -> bool:
        return self._encrypting is not None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._encrypting is None:
            return list(payloads)
        return [self._seal(payload, self._encrypting) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(payload) for payload in payloads]

    def _seal(self, payload: Payload, key_id: str) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload  # written before encryption was on: readable as it is
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UndecryptablePayloadError(missing_key_message(key_id, bool(self._ciphers)))
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise UndecryptablePayloadError(
                f"A payload sealed with encryption key {key_id!r} does not open with the key "
                "of that ID here: the key was changed under the same ID, or the payload was "
                "altered."
            ) from None
        return Payload.FromString(plain)


def missing_key_message(key_id: str, has_keys: bool) -> str:
    held = "does not hold it" if has_keys else "holds no keys"
    return (
        f"A payload is encrypted with key ID {key_id!r} and this process {held}: "
        f"add {key_id}:<base64-key> to {ENCRYPTION_KEYS_ENV} (or {ENCRYPTION_KEY_FILE_ENV})."
    )
