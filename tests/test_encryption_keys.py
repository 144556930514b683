"""Encryption settings and the codec on their own: no server needed."""

import base64
import os
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from client import connection as client_connection
from constants import ENCRYPTION_KEY_FILE_ENV, ENCRYPTION_KEYS_ENV
from encryption.codec import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    UndecryptablePayloadError,
)
from encryption.keys import EncryptionSettingsError, KeyRing, load_keys, parse_keys
from models.models import WorkflowInput

MARKER = "account 12345678 belongs to Ada Lovelace"


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def ring(*key_ids: str) -> KeyRing:
    return parse_keys([f"{key_id}:{new_key()}" for key_id in key_ids], source="test")


def payload_of(value: object) -> Payload:
    (payload,) = pydantic_data_converter.payload_converter.to_payloads([value])
    return payload


async def test_a_payload_is_sealed_with_the_first_key_and_names_it() -> None:
    codec = EncryptionCodec(ring("new", "old"))
    (sealed,) = await codec.encode([payload_of(WorkflowInput(user_request=MARKER))])
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"new"
    assert MARKER.encode() not in sealed.SerializeToString()
    (opened,) = await codec.decode([sealed])
    assert opened == payload_of(WorkflowInput(user_request=MARKER))


async def test_a_payload_sealed_with_a_rotated_out_key_still_opens() -> None:
    old_key = new_key()
    before = EncryptionCodec(parse_keys([f"k1:{old_key}"], source="test"))
    (sealed,) = await before.encode([payload_of(MARKER)])
    after = EncryptionCodec(parse_keys([f"k2:{new_key()}", f"k1:{old_key}"], source="test"))
    (opened,) = await after.decode([sealed])
    assert pydantic_data_converter.payload_converter.from_payloads([opened]) == [MARKER]
    (resealed,) = await after.encode([opened])
    assert resealed.metadata[KEY_ID_METADATA] == b"k2"


async def test_a_missing_key_is_named() -> None:
    (sealed,) = await EncryptionCodec(ring("k-2026-11")).encode([payload_of(MARKER)])
    with pytest.raises(UndecryptablePayloadError, match=r"key ID 'k-2026-11'.*does not hold it"):
        await EncryptionCodec(ring("other")).decode([sealed])
    with pytest.raises(UndecryptablePayloadError, match=r"key ID 'k-2026-11'.*holds no keys"):
        await EncryptionCodec(None).decode([sealed])


async def test_a_different_key_under_the_same_id_is_told_apart_from_a_missing_one() -> None:
    (sealed,) = await EncryptionCodec(ring("k1")).encode([payload_of(MARKER)])
    with pytest.raises(UndecryptablePayloadError, match="does not open with the key of that ID"):
        await EncryptionCodec(ring("k1")).decode([sealed])


async def test_without_keys_payloads_pass_through_both_ways() -> None:
    plain = payload_of(MARKER)
    codec = EncryptionCodec(None)
    assert await codec.encode([plain]) == [plain]
    assert await codec.decode([plain]) == [plain]


async def test_payloads_written_before_encryption_was_on_still_read() -> None:
    plain = payload_of(MARKER)
    assert await EncryptionCodec(ring("k1")).decode([plain]) == [plain]


def test_keys_come_from_the_variable_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENCRYPTION_KEYS_ENV, f" b:{new_key()} , a:{new_key()} ")
    keys = load_keys()
    assert keys is not None
    assert list(keys.keys) == ["b", "a"]
    assert keys.encrypting == "b"


def test_keys_come_from_a_file_with_comments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated 2026-11\nnew:{new_key()}\n\nold:{new_key()}  # until Dec\n")
    monkeypatch.setenv(ENCRYPTION_KEY_FILE_ENV, str(key_file))
    keys = load_keys()
    assert keys is not None
    assert list(keys.keys) == ["new", "old"]


def test_no_setting_means_no_encryption(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_keys() is None
    converter = client_connection.data_converter()
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert converter.failure_converter_class is pydantic_data_converter.failure_converter_class


def test_with_keys_failure_messages_are_encoded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENCRYPTION_KEYS_ENV, f"k1:{new_key()}")
    converter = client_connection.data_converter()
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.encrypts
    assert converter.failure_converter._encode_common_attributes  # type: ignore[attr-defined]


# Parameters name the tests: they must be the same in every pytest-xdist process.
FIXED_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("k1", f"{ENCRYPTION_KEYS_ENV}, entry 1 is not key-id:base64-key"),
        (f"k1:{FIXED_KEY},k1:{FIXED_KEY}", "entry 2: key ID 'k1' appears twice"),
        ("k1:not base64!", "entry 1 ('k1'): the key is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "the key is 5 bytes; AES-256 needs 32"),
        (" , ", f"{ENCRYPTION_KEYS_ENV} is set but holds no key"),
        (f"bad id:{FIXED_KEY}", "entry 1 is not key-id:base64-key"),
    ],
)
def test_bad_keys_are_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv(ENCRYPTION_KEYS_ENV, value)
    with pytest.raises(EncryptionSettingsError) as raised:
        load_keys()
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message
    secret = value.partition(":")[2]
    assert len(secret) < 8 or secret not in message  # never echo key material


def test_bad_key_settings_reach_the_scripts_as_settings_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENCRYPTION_KEY_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(client_connection.TemporalSettingsError, match="Cannot read"):
        client_connection.data_converter()
    monkeypatch.setenv(ENCRYPTION_KEYS_ENV, f"k1:{new_key()}")
    with pytest.raises(client_connection.TemporalSettingsError, match="not both"):
        client_connection.data_converter()
