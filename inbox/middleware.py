"""What every response gets: the request's session (read, or started with a fresh CSRF
token), the trusted proxy's user checked once, and the security headers."""

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from inbox.auth import SESSION_COOKIE, Session
from inbox.context import inbox_of
from inbox.errors import error
from inbox.proxy import ProxyRefused

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


async def sessions_and_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    inbox = inbox_of(request)
    try:
        request.state.proxy_user = inbox.settings.proxy.user(request)
    except ProxyRefused as refused:
        request.state.proxy_user = None
        request.state.session, request.state.new_session = inbox.sessions.new(None), False
        return _finish(request, error(request, refused.status, refused.reason))
    session = _current_session(request)
    request.state.session = session or inbox.sessions.new(None)
    # A fresh session (and its CSRF token) goes out with pages only. A cross-site POST
    # arrives without the cookie (SameSite=Lax): answering it with a new one would
    # replace the person's session, signing them out from another site.
    request.state.new_session = session is None and request.method in ("GET", "HEAD")
    return _finish(request, await call_next(request))


def _current_session(request: Request) -> Session | None:
    """The cookie's session, if a signed-in one still stands in the accounts file: a new
    password, a sign-out or the account's removal ends it at once."""
    inbox = inbox_of(request)
    session = inbox.sessions.read(request)
    if session is None or session.user is None:
        return session
    return session if inbox.accounts.session_valid(session.user, session.key) else None


def _finish(request: Request, response: Response) -> Response:
    """The session cookie when one was started, and the security headers, always."""
    settings = inbox_of(request).settings
    if request.state.new_session:
        response.set_cookie(
            SESSION_COOKIE,
            inbox_of(request).sessions.encode(request.state.session),
            max_age=settings.session_seconds,
            httponly=True,
            samesite="lax",
            secure=settings.https or request.url.scheme == "https",
        )
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    return response
