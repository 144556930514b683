"""Serve the payload codec over HTTP for the Temporal Web UI and CLI.

uv run python -m codec_server [--host 127.0.0.1] [--port 8081]

Needs the keys (HITL_ENCRYPTION_KEYS or HITL_ENCRYPTION_KEY_FILE) and a token
(HITL_CODEC_TOKEN); browsers may call it from HITL_CODEC_CORS_ORIGIN only.
"""

import argparse
import logging
import os
import sys
from urllib.parse import urlsplit

import uvicorn

from client.connection import TemporalSettingsError, data_converter
from codec_server.app import create_app
from console_exit import exit_process
from console_logging import configure_logging
from constants import (
    CODEC_CORS_ORIGIN_ENV,
    CODEC_TOKEN_ENV,
    DEFAULT_CODEC_CORS_ORIGIN,
    ENCRYPTION_KEY_FILE_ENV,
    ENCRYPTION_KEYS_ENV,
)
from encryption.codec import EncryptionCodec

DEFAULT_PORT = 8081
MIN_TOKEN_LENGTH = 16


class CodecServerSettingsError(Exception):
    """The server cannot start with these settings; the message names the one to fix."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="codec_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="(default %(default)s)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return args


def encrypting_codec() -> EncryptionCodec:
    """The clients' own codec; a server without keys would only pass ciphertext through."""
    try:
        codec = data_converter().payload_codec
    except TemporalSettingsError as err:
        raise CodecServerSettingsError(str(err)) from None
    assert isinstance(codec, EncryptionCodec)
    if not codec.encrypts:
        raise CodecServerSettingsError(
            f"No keys to decode with: set {ENCRYPTION_KEYS_ENV} or {ENCRYPTION_KEY_FILE_ENV}."
        )
    return codec


def required_token() -> str:
    token = os.environ.get(CODEC_TOKEN_ENV, "").strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise CodecServerSettingsError(
            f"Set {CODEC_TOKEN_ENV} to a secret of at least {MIN_TOKEN_LENGTH} characters "
            '(e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`): '
            "without it anyone who reaches this port could read every payload."
        )
    return token


def allowed_origin() -> str:
    """scheme://host[:port], exactly as the browser sends it in ``Origin``."""
    origin = os.environ.get(CODEC_CORS_ORIGIN_ENV, DEFAULT_CODEC_CORS_ORIGIN).strip()
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise CodecServerSettingsError(
            f"{CODEC_CORS_ORIGIN_ENV}={origin!r} is not an origin like {DEFAULT_CODEC_CORS_ORIGIN}."
        )
    return f"{parts.scheme}://{parts.netloc}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    try:
        app = create_app(encrypting_codec(), required_token(), allowed_origin())
    except CodecServerSettingsError as err:
        print(err, file=sys.stderr)
        return 1
    logging.info("Codec server on http://%s:%d for %s", args.host, args.port, allowed_origin())
    # No access log: a Web UI request carries the token in its path. No log config of
    # uvicorn's own: its records go through the terminal-safe handler like every other.
    uvicorn.run(
        app, host=args.host, port=args.port, access_log=False, log_level="warning", log_config=None
    )
    return 0


if __name__ == "__main__":
    exit_process(main())
