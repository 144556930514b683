"""The inbox's web application: pages for people, a JSON API for programs.

``create_app`` only wires: the shared objects (``context.py``), the middleware (sessions,
security headers, request limits), one router per area (``routes/``) and the error
handlers (``errors.py``). Routes stay thin: who is asking comes from a dependency
(``dependencies.py``), then one ``TemporalService`` call, then a template (Jinja2,
autoescaped) or JSON. Every state change is a POST that carries a CSRF token and comes from
our own origin; nothing changes on GET.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from inbox.accounts import Accounts
from inbox.auth import Sessions
from inbox.context import Inbox
from inbox.errors import add_error_handlers
from inbox.host_check import HostCheck
from inbox.middleware import sessions_and_headers
from inbox.page_tokens import PageTokens
from inbox.rendering import template_environment
from inbox.request_limits import BodyLimit
from inbox.routes import api, pages, signin
from inbox.routes.slack import slack_router
from inbox.service import TemporalService
from inbox.settings import InboxSettings
from inbox.sign_in_limits import SignInLimiter
from slack_approvals.settings import SlackEndpoint

STATIC = Path(__file__).parent / "static"


def create_app(
    settings: InboxSettings,
    service: TemporalService | None = None,
    slack: SlackEndpoint | None = None,
) -> FastAPI:
    app = FastAPI(title="Approval inbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.inbox = Inbox(
        settings=settings,
        temporal=service or TemporalService(),
        accounts=Accounts(settings.users_file),
        sessions=Sessions(settings.secret, settings.session_seconds),
        limiter=SignInLimiter(),
        page_tokens=PageTokens(settings.secret),
        templates=Jinja2Templates(env=template_environment()),
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.middleware("http")(sessions_and_headers)
    # Outermost last: the Host is checked first, then the body is bounded as it streams.
    app.add_middleware(BodyLimit)
    if settings.public_hosts:
        app.add_middleware(
            HostCheck, hosts=settings.public_hosts, public_url=settings.public_url or ""
        )
    for area in (signin, pages, api):
        app.include_router(area.router)
    if slack is not None:  # Slack's button presses (docs/slack.md)
        app.include_router(slack_router(slack, app.state.inbox.temporal))
    add_error_handlers(app)
    return app
