"""Where the encryption keys come from, checked before anything connects.

``HITL_ENCRYPTION_KEYS`` holds ``key-id:base64-key`` pairs separated by commas;
``HITL_ENCRYPTION_KEY_FILE`` names a file with one pair per line (``#`` starts a comment).
The first key encrypts; every key decrypts, so a key is rotated by putting a new one first
and keeping the old one until no run still needs it. Neither set: nothing is encrypted.

A mistake raises ``EncryptionSettingsError`` with one line naming the setting and the key ID
or position at fault, never the key material.
"""

import base64
import binascii
import os
import re
from dataclasses import dataclass
from pathlib import Path

from constants import ENCRYPTION_KEY_FILE_ENV, ENCRYPTION_KEYS_ENV

KEY_BYTES = 32  # AES-256
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class EncryptionSettingsError(Exception):
    """The encryption settings are unusable; the message names the one to fix."""


@dataclass(frozen=True)
class KeyRing:
    """The keys this process holds: ``encrypting`` names the one new payloads use."""

    keys: dict[str, bytes]
    encrypting: str


def load_keys() -> KeyRing | None:
    """The configured keys, or None when encryption is off."""
    text = os.environ.get(ENCRYPTION_KEYS_ENV, "").strip()
    file_name = os.environ.get(ENCRYPTION_KEY_FILE_ENV, "").strip()
    if text and file_name:
        raise EncryptionSettingsError(
            f"Set {ENCRYPTION_KEYS_ENV} or {ENCRYPTION_KEY_FILE_ENV}, not both."
        )
    if file_name:
        return parse_keys(_read_key_file(Path(file_name)), source=ENCRYPTION_KEY_FILE_ENV)
    if text:
        return parse_keys(text.split(","), source=ENCRYPTION_KEYS_ENV)
    return None


def _read_key_file(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise EncryptionSettingsError(
            f"Cannot read {ENCRYPTION_KEY_FILE_ENV}={path}: {reason}."
        ) from None
    return [line.partition("#")[0] for line in lines]


def parse_keys(entries: list[str], *, source: str) -> KeyRing:
    """``key-id:base64-key`` entries (blank ones skipped), the first one encrypting."""
    keys: dict[str, bytes] = {}
    for position, entry in enumerate((e.strip() for e in entries if e.strip()), start=1):
        key_id, separator, encoded = (part.strip() for part in entry.partition(":"))
        where = f"{source}, entry {position}"
        if not separator or not KEY_ID_PATTERN.fullmatch(key_id):
            raise EncryptionSettingsError(
                f"{where} is not key-id:base64-key (a key ID is letters, digits, '.', '_', '-')."
            )
        if key_id in keys:
            raise EncryptionSettingsError(f"{where}: key ID {key_id!r} appears twice.")
        keys[key_id] = _decode_key(encoded, f"{where} ({key_id!r})")
    if not keys:
        raise EncryptionSettingsError(f"{source} is set but holds no key.")
    return KeyRing(keys=keys, encrypting=next(iter(keys)))


def _decode_key(encoded: str, where: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionSettingsError(f"{where}: the key is not valid base64.") from None
    if len(key) != KEY_BYTES:
        raise EncryptionSettingsError(
            f"{where}: the key is {len(key)} bytes; AES-256 needs {KEY_BYTES} "
            '(make one with `python -c "import base64, os; '
            'print(base64.b64encode(os.urandom(32)).decode())"`).'
        )
    return key
