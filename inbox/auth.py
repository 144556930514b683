"""Who is asking: a signed session cookie, a trusted proxy's identity header, or an API
bearer token; and the guards around them (CSRF, origin checks, failed sign-in limits).

The identity found here is the reviewer recorded in the audit trail: no form field or
JSON field can set it.
"""

import ipaddress
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

SESSION_COOKIE = "inbox_session"
SESSION_SECONDS = 8 * 60 * 60
# oauth2-proxy sets the first with --pass-user-headers, the second with --set-xauthrequest.
PROXY_USER_HEADERS = ("x-forwarded-user", "x-auth-request-user")
FAILED_SIGN_IN_LIMIT = 5
FAILED_SIGN_IN_WINDOW_SECONDS = 300

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Session:
    user: str | None
    csrf: str


def parse_networks(text: str) -> list[Network]:
    """``HITL_INBOX_TRUSTED_PROXIES``: addresses or networks, comma-separated."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    ]


class Sessions:
    """Sessions live in a cookie signed with the inbox's secret: a visitor without one gets
    one with a fresh CSRF token; signing in starts a new one (no session fixation)."""

    def __init__(self, secret: str, max_age: int = SESSION_SECONDS) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="inbox-session")
        self.max_age = max_age

    def read(self, request: Request) -> Session | None:
        return self.decode(request.cookies.get(SESSION_COOKIE))

    def decode(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data: dict[str, Any] = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # tampered, from another secret, or expired
            return None
        user, csrf = data.get("user"), data.get("csrf")
        if not isinstance(csrf, str) or not (user is None or isinstance(user, str)):
            return None
        return Session(user, csrf)

    def new(self, user: str | None) -> Session:
        return Session(user, secrets.token_urlsafe(32))

    def encode(self, session: Session) -> str:
        return self._serializer.dumps({"user": session.user, "csrf": session.csrf})


def proxy_user(request: Request, trusted: list[Network]) -> str | None:
    """The user a trusted proxy vouches for; from any other address the header is ignored.

    The peer address is the TCP peer (uvicorn runs without ``--proxy-headers``), so an
    ``X-Forwarded-For`` cannot make a client look like the proxy.
    """
    if not trusted or request.client is None:
        return None
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return None
    if not any(peer in network for network in trusted):
        return None
    for header in PROXY_USER_HEADERS:
        if value := request.headers.get(header, "").strip():
            return value
    return None


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def same_origin(request: Request, public_origin: str | None) -> bool:
    """The browser says this POST comes from our own pages. Browsers send ``Origin`` (and
    ``Sec-Fetch-Site``) on every POST; a client that sends neither is not a browser acting
    for someone else, and the CSRF token still has to match."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin in {own, public_origin}


def tokens_match(given: str | None, expected: str) -> bool:
    return given is not None and secrets.compare_digest(given, expected)


class SignInLimiter:
    """At most ``FAILED_SIGN_IN_LIMIT`` failed sign-ins per window, per user name and per
    client address, whether or not the user exists."""

    def __init__(
        self, limit: int = FAILED_SIGN_IN_LIMIT, window: float = FAILED_SIGN_IN_WINDOW_SECONDS
    ) -> None:
        self._limit, self._window = limit, window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] < time.monotonic() - self._window:
            failures.popleft()
        if not failures:  # forget keys with nothing recent: the table stays small
            self._failures.pop(key, None)
        return failures

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed (0: now)."""
        waits = [
            int(failures[0] + self._window - time.monotonic()) + 1
            for key in keys
            if len(failures := self._recent(key)) >= self._limit
        ]
        return max(waits, default=0)

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._failures[key] = self._recent(key)
            self._failures[key].append(time.monotonic())
