"""What every route reads: the inbox's shared objects, and who the middleware found asking.

``create_app`` builds one ``Inbox`` and keeps it on ``app.state``; the middleware
(``middleware.py``) sets the request's session and proxy user before any route runs.
"""

from dataclasses import dataclass

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from inbox.accounts import Accounts
from inbox.auth import Session, Sessions
from inbox.page_tokens import PageTokens
from inbox.service import TemporalService
from inbox.settings import InboxSettings
from inbox.sign_in_limits import SignInLimiter


@dataclass(frozen=True)
class Inbox:
    settings: InboxSettings
    temporal: TemporalService
    accounts: Accounts
    sessions: Sessions
    limiter: SignInLimiter
    page_tokens: PageTokens
    templates: Jinja2Templates


def inbox_of(request: Request) -> Inbox:
    return request.app.state.inbox


def session_of(request: Request) -> Session:
    """The request's session; a fresh one where the middleware did not run (an error
    raised outside it)."""
    if not hasattr(request.state, "session"):
        request.state.session = inbox_of(request).sessions.new(None)
        request.state.new_session = True
    return request.state.session


def via_proxy(request: Request) -> str | None:
    """The user the proxy named (checked once, by the middleware)."""
    return getattr(request.state, "proxy_user", None)


def identity(request: Request) -> str | None:
    return via_proxy(request) or session_of(request).user


def start_session(request: Request, user: str | None) -> None:
    """A new session (and CSRF token) for ``user``, sent with this response: signing in
    or out never keeps the old one (no session fixation)."""
    inbox = inbox_of(request)
    key = inbox.accounts.session_key(user) if user is not None else ""
    request.state.session = inbox.sessions.new(user, key)
    request.state.new_session = True
