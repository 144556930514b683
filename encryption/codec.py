"""AES-256-GCM payload codec: every payload leaves the process encrypted, with its key ID.

Temporal stores what the codec returns: the server, its database and the Web UI see only
``binary/encrypted`` payloads. The original payload (metadata and data) is serialised and
sealed whole, so even its encoding is hidden. Each payload records the ID of the key that
sealed it in its metadata, so a rotated-out key can still open old payloads, and a process
without that key says which one it lacks instead of failing on garbage. The key ID is also
the cipher's associated data: a payload relabelled with another ID fails to open.

A worker's copy (``for_worker``) does not raise on a payload it cannot open when decoding
for a workflow: it hands over a marker instead (``encryption/undecodable.py``), so one
forged signal cannot fail every workflow task of a run. With keys, a worker's copy cannot
open a payload that is not encrypted either: the key is what proves a decision (or a start)
came from someone who holds it, so a client without one cannot decide as anyone.
"""

import copy
import os
from collections.abc import Sequence
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from constants import ENCRYPTION_KEY_FILE_ENV, ENCRYPTION_KEYS_ENV
from encryption.keys import KeyRing
from encryption.undecodable import shown, undecodable_payload

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12  # GCM's standard nonce; random per payload
NOT_ENCRYPTED_REASON = "it is not encrypted, and this worker takes only encrypted payloads"
NOT_ENCRYPTED_MESSAGE = (
    "A payload reached this worker not encrypted while encryption is on: a client without a "
    "key sent it (or it predates encryption). A run takes only payloads sealed with a key "
    f"its worker holds ({ENCRYPTION_KEYS_ENV})."
)


class UndecryptablePayloadError(Exception):
    """A payload this process cannot decrypt; the message names the key ID it needs.

    ``reason`` says the same in one line without the remedy, for an audit trail: a run that
    refused a payload must not be told to add a key (its history would then replay
    differently).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """Encrypts with the ring's first key, decrypts with any of its keys.

    With no keys (encryption off) it passes payloads through, and still names the key an
    encrypted payload needs, rather than leaving the SDK to report an unknown encoding.
    """

    def __init__(self, ring: KeyRing | None) -> None:
        self._ciphers = {key_id: AESGCM(key) for key_id, key in (ring.keys if ring else {}).items()}
        self._encrypting = ring.encrypting if ring else None
        self._for_worker = False
        self._marks_undecodable = False

    def for_worker(self) -> "EncryptionCodec":
        """This codec as a worker uses it: see ``with_context``."""
        worker = copy.copy(self)
        worker._for_worker = True
        return worker

    def with_context(self, context: SerializationContext) -> Self:
        """A worker's codec marks what it cannot open, instead of raising, only in a
        workflow's context: there the SDK decodes a whole activation at once, and one
        payload raising fails the workflow task, every retry alike. What is marked then
        reaches the handler as ``Undecodable``, or fails conversion loudly where a type is
        expected. Activity results (activity context) and everything a client reads still
        raise: for those a missing key is an operator's fix, not a refusal.
        """
        marks = self._for_worker and isinstance(context, WorkflowSerializationContext)
        if marks == self._marks_undecodable:
            return self
        scoped = copy.copy(self)
        scoped._marks_undecodable = marks
        return scoped

    @property
    def encrypts(self) -> bool:
        return self._encrypting is not None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._encrypting is None:
            return list(payloads)
        return [self._seal(payload, self._encrypting) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not self._marks_undecodable:
            return [self._open(payload) for payload in payloads]
        return [self._open_or_mark(payload) for payload in payloads]

    def _open_or_mark(self, payload: Payload) -> Payload:
        try:
            return self._open(payload)
        except UndecryptablePayloadError as err:
            return undecodable_payload(err.reason, str(err))

    def _seal(self, payload: Payload, key_id: str) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            if self._for_worker and self._encrypting is not None:
                raise UndecryptablePayloadError(NOT_ENCRYPTED_MESSAGE, NOT_ENCRYPTED_REASON)
            return payload  # a client reads what was written before encryption was on
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            has_keys = bool(self._ciphers)
            held = (
                "which this worker does not hold" if has_keys else "and this worker holds no keys"
            )
            raise UndecryptablePayloadError(
                missing_key_message(key_id, has_keys),
                f"it is encrypted with key ID {shown(key_id)}, {held}",
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            # ValueError: a nonce too short for GCM, which only a forged payload has.
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except (InvalidTag, ValueError):
            raise UndecryptablePayloadError(
                f"A payload sealed with encryption key {key_id!r} does not open with the key "
                "of that ID here: the key was changed under the same ID, or the payload was "
                "altered.",
                f"it does not open with encryption key {shown(key_id)} (a different key under "
                "that ID, or an altered payload)",
            ) from None
        try:
            return Payload.FromString(plain)
        except DecodeError:  # sealed with the right key, but not by this codec
            raise UndecryptablePayloadError(
                f"A payload sealed with encryption key {key_id!r} holds no payload.",
                f"what key {shown(key_id)} opens is not a payload",
            ) from None


def missing_key_message(key_id: str, has_keys: bool) -> str:
    held = "does not hold it" if has_keys else "holds no keys"
    return (
        f"A payload is encrypted with key ID {shown(key_id)} and this process {held}: add "
        f"it as ID:<base64-key> to {ENCRYPTION_KEYS_ENV} (or {ENCRYPTION_KEY_FILE_ENV})."
    )
