"""Who is asking: a signed session cookie or an API bearer token, and the guards around
them (CSRF, origin checks). A trusted proxy's identity header is ``proxy.py``'s; failed
sign-in limits are ``sign_in_limits.py``'s.

The identity found here is the reviewer recorded in the audit trail: no form field or
JSON field can set it.
"""

import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

SESSION_COOKIE = "inbox_session"
SESSION_SECONDS = 8 * 60 * 60


@dataclass(frozen=True)
class Session:
    user: str | None
    csrf: str
    # The account's session key when it was issued (``Accounts.session_valid``): a new
    # password, a sign-out or the account's removal changes it, and the session ends.
    key: str = ""


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
        user, csrf, key = data.get("user"), data.get("csrf"), data.get("key")
        if not isinstance(csrf, str) or not isinstance(key, str):
            return None
        if not (user is None or isinstance(user, str)):
            return None
        return Session(user, csrf, key)

    def new(self, user: str | None, key: str = "") -> Session:
        return Session(user, secrets.token_urlsafe(32), key)

    def encode(self, session: Session) -> str:
        return self._serializer.dumps(
            {"user": session.user, "csrf": session.csrf, "key": session.key}
        )


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
