"""The inbox's web application: pages for people, a JSON API for programs.

Routes stay thin: they find out who is asking (``auth.py``), call one ``TemporalService``
method, and render a template (Jinja2, autoescaped: untrusted text is only ever rendered
as text) or JSON. Every state change is a POST that carries a CSRF token and comes from our
own origin; nothing changes on GET.
"""

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates

from inbox.accounts import Accounts, AccountsError
from inbox.auth import (
    SESSION_COOKIE,
    Session,
    Sessions,
    bearer_token,
    same_origin,
    tokens_match,
)
from inbox.host_check import HostCheck
from inbox.page_tokens import BadPageTokenError, PageTokens
from inbox.proxy import ProxyRefused
from inbox.request_limits import MAX_FORM_FIELDS, MAX_FORM_FILES, MAX_FORM_PART_BYTES, BodyLimit
from inbox.service import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    NotFoundError,
    RefusedError,
    SealedError,
    StageOf,
    TemporalService,
    UnavailableError,
)
from inbox.settings import InboxSettings
from inbox.sign_in_limits import SignInLimiter
from inbox.views import decided_item, pending_item, status_json
from inbox.visible_text import finalize
from models.limits import MAX_NAME_CHARS, MAX_NOTES_CHARS, edited_arguments
from models.models import WorkflowState, WorkflowStatus

HERE = Path(__file__).parent
log = logging.getLogger("inbox")

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
VERDICTS = {"approve": True, "reject": False, "approve_edited": True}
PAGE_SIZE_PARAMETER = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


class SignInRequired(Exception):
    """A page needs a signed-in person; they are sent to the sign-in page."""


class CsrfRefused(Exception):
    """A POST that did not come from our own page (or whose page is too old)."""


class FormError(Exception):
    """A form field is missing or malformed; the message names it."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class DecisionBody(BaseModel):
    """``POST /api/requests/{id}/decision``. There is no reviewer field: the reviewer is
    whoever the bearer token belongs to (a body naming one is refused, 422)."""

    model_config = ConfigDict(extra="forbid")

    approved: StrictBool
    notes: str = Field(default="", max_length=MAX_NOTES_CHARS)
    request_id: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    # A staged request: the stage decided. A retry after that stage was decided is answered
    # "already applied" (or refused), never applied to the next stage.
    stage: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    # Approve the tool call with these arguments instead (the edited call is asked again).
    amended_arguments: dict[str, Any] | None = None


def create_app(settings: InboxSettings, service: TemporalService | None = None) -> FastAPI:
    app = FastAPI(title="Approval inbox", docs_url=None, redoc_url=None, openapi_url=None)
    temporal = service or TemporalService()
    accounts = Accounts(settings.users_file)
    proxy = settings.proxy
    sessions = Sessions(settings.secret, settings.session_seconds)
    limiter = SignInLimiter()
    page_tokens = PageTokens(settings.secret)
    templates = Jinja2Templates(env=_template_environment())
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.sessions = sessions

    # ---- who is asking ------------------------------------------------------------------

    def session_of(request: Request) -> Session:
        """The request's session; a fresh one where the middleware did not run (an error
        raised outside it)."""
        if not hasattr(request.state, "session"):
            request.state.session, request.state.new_session = sessions.new(None), True
        return request.state.session

    def via_proxy(request: Request) -> str | None:
        """The user the proxy named (checked once, by the middleware)."""
        return getattr(request.state, "proxy_user", None)

    def identity(request: Request) -> str | None:
        return via_proxy(request) or session_of(request).user

    def current_session(request: Request) -> Session | None:
        """The cookie's session, if a signed-in one still stands in the accounts file:
        a new password, a sign-out or the account's removal ends it at once."""
        session = sessions.read(request)
        if session is None or session.user is None:
            return session
        return session if accounts.session_valid(session.user, session.key) else None

    def signed_in(request: Request) -> str:
        user = identity(request)
        if user is None:
            raise SignInRequired()
        return user

    def api_user(request: Request) -> str:
        token = bearer_token(request)
        if token is None:
            if identity(request) is not None:
                raise ApiError(403, "the API takes a bearer token (python -m inbox add-token)")
            raise ApiError(401, "missing credentials: send Authorization: Bearer <token>")
        user = accounts.user_for_token(token)
        if user is None:
            raise ApiError(401, "invalid token")
        return user

    async def checked_form(request: Request) -> dict[str, str]:
        form = await request.form(
            max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES
        )
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        session = session_of(request)
        if not same_origin(request, settings.public_origin) or not tokens_match(
            fields.get("csrf_token"), session.csrf
        ):
            raise CsrfRefused()
        return fields

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context |= {
            "user": identity(request),
            "csrf_token": session_of(request).csrf,
            "via_proxy": via_proxy(request) is not None,
        }
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    # ---- every response -----------------------------------------------------------------

    @app.middleware("http")
    async def sessions_and_headers(request: Request, call_next: Any) -> Response:
        try:
            request.state.proxy_user = proxy.user(request)
        except ProxyRefused as refused:
            request.state.proxy_user = None
            request.state.session, request.state.new_session = sessions.new(None), False
            return finish(request, error(request, refused.status, refused.reason))
        session = current_session(request)
        request.state.session = session or sessions.new(None)
        # A fresh session (and its CSRF token) goes out with pages only. A cross-site POST
        # arrives without the cookie (SameSite=Lax): answering it with a new one would
        # replace the person's session, signing them out from another site.
        request.state.new_session = session is None and request.method in ("GET", "HEAD")
        return finish(request, await call_next(request))

    def finish(request: Request, response: Response) -> Response:
        """The session cookie when one was started, and the security headers, always."""
        if request.state.new_session:
            response.set_cookie(
                SESSION_COOKIE,
                sessions.encode(request.state.session),
                max_age=settings.session_seconds,
                httponly=True,
                samesite="lax",
                secure=settings.https or request.url.scheme == "https",
            )
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    # Outermost last: the Host is checked first, then the body is bounded as it streams.
    app.add_middleware(BodyLimit)
    if settings.public_hosts:
        app.add_middleware(
            HostCheck, hosts=settings.public_hosts, public_url=settings.public_url or ""
        )

    def start_session(request: Request, user: str | None) -> None:
        key = accounts.session_key(user) if user is not None else ""
        request.state.session = sessions.new(user, key)
        request.state.new_session = True

    # ---- errors: never a traceback ------------------------------------------------------

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error(request: Request, status: int, message: str) -> Response:
        if is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        return page(request, "error.html", status, message=message, retry=status == 503)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _: Exception) -> Response:
        return error(
            request,
            403,
            "This form did not come from this inbox's page, or the page is too old. "
            "Nothing was changed; reload the page and try again.",
        )

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error(request, exc.status, exc.message)

    @app.exception_handler(FormError)
    async def _form(request: Request, exc: Exception) -> Response:
        return error(request, 422, str(exc))

    @app.exception_handler(BadPageTokenError)
    async def _bad_page(request: Request, exc: Exception) -> Response:
        return error(request, 422, str(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: Exception) -> Response:
        return error(request, 404, str(exc))

    @app.exception_handler(StageOf)
    async def _stage(request: Request, exc: Exception) -> Response:
        """A stage's child ID: its request is decided on the parent's page."""
        assert isinstance(exc, StageOf)
        if is_api(request) or request.method != "GET":
            return error(request, 404, f"That is a stage of {exc.parent_id}; use that ID.")
        return RedirectResponse(f"/requests/{quote(exc.parent_id, safe='')}", status_code=303)

    @app.exception_handler(SealedError)
    async def _sealed(request: Request, exc: Exception) -> Response:
        """403, not 503: the inbox lacks a key, and waiting will not give it one."""
        return error(request, 403, str(exc))

    @app.exception_handler(UnavailableError)
    async def _unavailable(request: Request, exc: Exception) -> Response:
        return error(request, 503, f"{exc} This page retries by itself.")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error(request, 422, _describe_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Unexpected error on %s %s", request.method, request.url.path)
        return error(request, 500, "Something went wrong in the inbox; it was logged.")

    # ---- sign-in --------------------------------------------------------------------------

    @app.get("/signin")
    async def signin_page(request: Request, next: str = "/") -> Response:
        if identity(request) is not None:
            return RedirectResponse(_local(next), status_code=303)
        return page(request, "signin.html", next=_local(next), has_accounts=accounts.exist())

    @app.post("/signin")
    async def signin(request: Request) -> Response:
        form = await checked_form(request)
        name, password = form.get("username", ""), form.get("password", "")
        next_page = _local(form.get("next", "/"))
        client = proxy.client_address(request)
        if wait := limiter.retry_after(name, client):
            message = f"Too many failed sign-ins. Try again in {wait} seconds."
            return page(request, "signin.html", 429, next=next_page, message=message)
        if not accounts.check_password(name, password):
            limiter.failed(name, client)
            message = "Wrong user name or password."
            return page(request, "signin.html", 401, next=next_page, message=message)
        limiter.succeeded(name, client)
        start_session(request, name)
        return RedirectResponse(next_page, status_code=303)

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        await checked_form(request)
        user = session_of(request).user
        start_session(request, None)
        if user is not None:
            try:  # every session of this account, in every browser, ends here
                accounts.end_sessions(user)
            except AccountsError:
                log.exception("Sign-out of %s could not end its other sessions", user)
                return error(
                    request,
                    500,
                    "This browser is signed out, but your other sessions could not be ended: "
                    "the inbox cannot write its accounts file. It was logged.",
                )
        return RedirectResponse("/signin", status_code=303)

    # ---- pages ------------------------------------------------------------------------------

    @app.get("/")
    async def pending_page(
        request: Request,
        mine: bool = False,
        page_token: str | None = None,
        page_size: int = PAGE_SIZE_PARAMETER,
    ) -> Response:
        user = signed_in(request)
        found = await temporal.pending(
            page_tokens.read("pending", page_token), page_size, for_user=user if mine else None
        )
        items = [pending_item(p) for p in found.items]
        token = page_tokens.make("pending", found.next_page_token)
        return list_page(request, "pending.html", items, token, mine=mine)

    @app.get("/decided")
    async def decided_page(
        request: Request, page_token: str | None = None, page_size: int = PAGE_SIZE_PARAMETER
    ) -> Response:
        signed_in(request)
        found = await temporal.decided(page_tokens.read("decided", page_token), page_size)
        items = [decided_item(d) for d in found.items]
        return list_page(
            request, "decided.html", items, page_tokens.make("decided", found.next_page_token)
        )

    def list_page(
        request: Request, name: str, items: list[dict[str, Any]], token: str | None, **context: Any
    ) -> Response:
        """A list's page: its rows, a link to the next (older) page, and one back to the
        newest when this is not the first."""
        next_url = _next_url(request, token)
        first_url = (
            _with_page_token(request, None) if "page_token" in request.query_params else None
        )
        links = {"next_url": next_url, "first_url": first_url}
        version = _version([items, links])
        return page(request, name, items=items, version=version, **links, **context)

    @app.get("/requests/{workflow_id:path}")
    async def request_page(request: Request, workflow_id: str, sent: str | None = None) -> Response:
        signed_in(request)
        status = await temporal.status(workflow_id)
        return render_request(request, workflow_id, status, sent=sent)

    def render_request(
        request: Request,
        workflow_id: str,
        status: WorkflowStatus,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        data = status_json(workflow_id, status)
        return page(
            request,
            "request.html",
            status_code,
            workflow_id=workflow_id,
            s=status,
            version=_version(data),
            form_key=_form_key(status),
            **context,
        )

    @app.post("/requests/{workflow_id:path}/decision")
    async def decide_from_page(request: Request, workflow_id: str) -> Response:
        user = signed_in(request)
        form = await checked_form(request)
        verdict = form.get("verdict", "")
        if verdict not in VERDICTS:
            raise FormError("verdict: must be approve, reject or approve_edited")
        arguments = _edited_arguments(form) if verdict == "approve_edited" else None
        try:
            await temporal.decide(
                workflow_id,
                user,
                VERDICTS[verdict],
                form.get("notes", ""),
                request_id=form.get("request_id") or None,
                arguments=arguments,
                stage=form.get("stage") or None,
            )
        except RefusedError as refused:
            status = await temporal.status(workflow_id)
            return render_request(request, workflow_id, status, 409, refused=str(refused))
        sent = "approved" if VERDICTS[verdict] else "rejected"
        return RedirectResponse(
            f"/requests/{quote(workflow_id, safe='')}?sent={sent}", status_code=303
        )

    # ---- JSON API ---------------------------------------------------------------------------

    @app.get("/api/requests")
    async def api_list(
        request: Request,
        status: str = "pending",
        page_token: str | None = None,
        page_size: int = PAGE_SIZE_PARAMETER,
    ) -> Response:
        """One page of the list, newest first, as a JSON list; the next page's URL (with its
        ``page_token``) in a ``Link: <...>; rel="next"`` header, absent on the last page."""
        api_user(request)
        if status == "pending":
            pending = await temporal.pending(page_tokens.read(status, page_token), page_size)
            items, token = [pending_item(p) for p in pending.items], pending.next_page_token
        elif status == "decided":
            decided = await temporal.decided(page_tokens.read(status, page_token), page_size)
            items, token = [decided_item(d) for d in decided.items], decided.next_page_token
        else:
            raise ApiError(422, "status: must be pending or decided")
        next_url = _next_url(request, page_tokens.make(status, token))
        headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else None
        return JSONResponse(items, headers=headers)

    @app.get("/api/requests/{workflow_id:path}")
    async def api_status(request: Request, workflow_id: str) -> Response:
        api_user(request)
        status = await temporal.status(workflow_id)
        return JSONResponse(status_json(workflow_id, status))

    @app.post("/api/requests/{workflow_id:path}/decision")
    async def api_decide(request: Request, workflow_id: str) -> Response:
        user = api_user(request)
        try:
            body = DecisionBody.model_validate_json(await request.body())
        except ValidationError as err:
            raise ApiError(422, _describe_errors(err.errors())) from None
        try:
            decision = await temporal.decide(
                workflow_id,
                user,
                body.approved,
                body.notes,
                request_id=body.request_id,
                arguments=body.amended_arguments,
                stage=body.stage,
            )
        except RefusedError as refused:
            raise ApiError(409, str(refused)) from None
        return JSONResponse(decision.model_dump(mode="json"))

    return app


def _template_environment() -> Environment:
    """Autoescaping on for every template, whatever its name; unknown names fail loudly;
    every value shown with its invisible characters made visible (``visible_text.py``)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=finalize,  # invisible and bidi characters shown as escapes, everywhere
    )
    env.filters["urlid"] = lambda value: quote(str(value), safe="")
    env.filters["when"] = _when
    env.filters["left"] = _time_left
    # A form field longer than this is refused whole (request_limits.py); the textarea stops there.
    env.globals["MAX_FORM_PART_BYTES"] = MAX_FORM_PART_BYTES
    return env


def _when(value: datetime | str | None) -> str:
    if not value:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.isoformat(timespec="seconds")


def _time_left(deadline: datetime | str) -> str:
    """What the countdown shows before the script takes over (or without it)."""
    if isinstance(deadline, str):
        deadline = datetime.fromisoformat(deadline)
    seconds = int((deadline - datetime.now(UTC)).total_seconds())
    if seconds <= 0:
        return "deadline passed"
    return f"{seconds // 60}:{seconds % 60:02d} left"


def _local(target: str) -> str:
    """Only paths on this site: never an open redirect to another one."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _version(data: object) -> str:
    """Changes whenever what a live region shows changes (the script then swaps it)."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _form_key(status: WorkflowStatus) -> str:
    """The decision form is replaced only when what it decides changes, never while someone
    types into it because another approver voted."""
    request = status.approval_request
    parts: list[object] = [status.state.value]
    if request is not None and status.state == WorkflowState.AWAITING_APPROVAL:
        stage = status.current_stage
        parts += [request.request_id, stage.stage if stage else "", request.proposed_action]
    return _version(parts)


def _with_page_token(request: Request, token: str | None) -> str:
    """This list's URL (same path and filters) at the page ``token`` names, or (None) at its
    first page."""
    params = {k: v for k, v in request.query_params.items() if k != "page_token"}
    if token is not None:
        params["page_token"] = token
    return request.url.path + (f"?{urlencode(params)}" if params else "")


def _next_url(request: Request, token: str | None) -> str | None:
    """The next (older) page's URL; None after the last page."""
    return _with_page_token(request, token) if token is not None else None


def _edited_arguments(form: dict[str, str]) -> dict[str, Any]:
    try:
        return edited_arguments(form.get("arguments", ""))
    except ValueError as err:
        raise FormError(f"arguments: {err}") from None


def _describe_errors(errors: Any) -> str:
    """'field: what is wrong' for each error, as one line."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
