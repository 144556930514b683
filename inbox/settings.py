"""The inbox's settings, read once from the environment (names in ``constants.py``)."""

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from constants import (
    DEFAULT_PROXY_USER_HEADER,
    INBOX_HOST_ENV,
    INBOX_PORT_ENV,
    INBOX_PROXY_SECRET_ENV,
    INBOX_PROXY_USER_HEADER_ENV,
    INBOX_SECRET_ENV,
    INBOX_TRUSTED_PROXIES_ENV,
    INBOX_URL_ENV,
)
from inbox.accounts import users_file
from inbox.auth import SESSION_SECONDS
from inbox.proxy import IDENTITY_HEADERS, Network, ProxyTrust, parse_networks

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Shorter is guessable; `openssl rand -hex 32` gives 64 characters.
MIN_PROXY_SECRET_CHARS = 32


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
    proxy_secret: str | None = None  # HITL_INBOX_PROXY_SECRET: the proxy's proof
    proxy_user_header: str = DEFAULT_PROXY_USER_HEADER

    def __post_init__(self) -> None:
        """A proxy trusted by address alone is any process on its machine: refused."""
        if self.trusted_proxies and not self.proxy_secret:
            raise SettingsError(
                f"{INBOX_TRUSTED_PROXIES_ENV} needs {INBOX_PROXY_SECRET_ENV}: the proxy must "
                "prove itself with a shared secret, not only its address"
            )
        if self.proxy_secret and not self.trusted_proxies:
            raise SettingsError(f"{INBOX_PROXY_SECRET_ENV} needs {INBOX_TRUSTED_PROXIES_ENV}")
        if self.proxy_secret and len(self.proxy_secret) < MIN_PROXY_SECRET_CHARS:
            raise SettingsError(
                f"{INBOX_PROXY_SECRET_ENV} must have at least {MIN_PROXY_SECRET_CHARS} characters"
            )
        if self.proxy_user_header.lower() not in IDENTITY_HEADERS:
            known = ", ".join(sorted(IDENTITY_HEADERS))
            raise SettingsError(f"{INBOX_PROXY_USER_HEADER_ENV} must be one of: {known}")

    @property
    def proxy(self) -> ProxyTrust:
        return ProxyTrust(self.trusted_proxies, self.proxy_secret, self.proxy_user_header)

    @property
    def public_hosts(self) -> frozenset[str]:
        """The ``Host`` values a request may carry when ``HITL_INBOX_URL`` is set (none
        else): its host and port, the scheme's default port written or not."""
        if not self.public_url:
            return frozenset()
        parts = urlsplit(self.public_url)
        host = (parts.hostname or "").lower()
        host = f"[{host}]" if ":" in host else host
        default = {"http": 80, "https": 443}.get(parts.scheme)
        if parts.port not in (None, default):
            return frozenset({f"{host}:{parts.port}"})
        return frozenset({host, f"{host}:{default}"})

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
            proxy_secret=os.environ.get(INBOX_PROXY_SECRET_ENV) or None,
            proxy_user_header=(
                os.environ.get(INBOX_PROXY_USER_HEADER_ENV, "").strip() or DEFAULT_PROXY_USER_HEADER
            ),
        )


def listen_defaults() -> tuple[str, int]:
    host = os.environ.get(INBOX_HOST_ENV) or DEFAULT_HOST
    port_text = os.environ.get(INBOX_PORT_ENV) or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SettingsError(f"{INBOX_PORT_ENV} must be a port number, not {port_text!r}")
    return host, int(port_text)
