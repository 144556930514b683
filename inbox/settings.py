"""The inbox's settings, read once from the environment (names in ``constants.py``)."""

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from constants import (
    INBOX_HOST_ENV,
    INBOX_PORT_ENV,
    INBOX_SECRET_ENV,
    INBOX_TRUSTED_PROXIES_ENV,
    INBOX_URL_ENV,
)
from inbox.accounts import users_file
from inbox.auth import SESSION_SECONDS, Network, parse_networks

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class SettingsError(Exception):
    """A setting cannot be used; the message names it."""


@dataclass(frozen=True)
class InboxSettings:
    users_file: Path
    trusted_proxies: list[Network] = field(default_factory=list)
    # Signs session cookies. Random by default: sessions then end when the inbox restarts.
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    public_url: str | None = None  # HITL_INBOX_URL, where people open the inbox
    session_seconds: int = SESSION_SECONDS

    @property
    def public_origin(self) -> str | None:
        if not self.public_url:
            return None
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def https(self) -> bool:
        return (self.public_url or "").startswith("https://")

    @classmethod
    def from_env(cls) -> "InboxSettings":
        try:
            proxies = parse_networks(os.environ.get(INBOX_TRUSTED_PROXIES_ENV, ""))
        except ValueError as err:
            raise SettingsError(f"{INBOX_TRUSTED_PROXIES_ENV}: {err}") from None
        public_url = os.environ.get(INBOX_URL_ENV, "").strip().rstrip("/") or None
        if public_url and urlsplit(public_url).scheme not in ("http", "https"):
            raise SettingsError(f"{INBOX_URL_ENV} must start with https:// or http://")
        return cls(
            users_file=users_file(),
            trusted_proxies=proxies,
            secret=os.environ.get(INBOX_SECRET_ENV) or secrets.token_urlsafe(32),
            public_url=public_url,
        )


def listen_defaults() -> tuple[str, int]:
    host = os.environ.get(INBOX_HOST_ENV) or DEFAULT_HOST
    port_text = os.environ.get(INBOX_PORT_ENV) or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SettingsError(f"{INBOX_PORT_ENV} must be a port number, not {port_text!r}")
    return host, int(port_text)
