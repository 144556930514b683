"""Signing in and out with the inbox's own accounts (a trusted proxy's users never do)."""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from inbox.accounts import AccountsError
from inbox.context import identity, session_of, start_session
from inbox.dependencies import CheckedForm, InboxDep
from inbox.errors import error
from inbox.rendering import page

router = APIRouter()
log = logging.getLogger("inbox")


@router.get("/signin")
async def signin_page(request: Request, inbox: InboxDep, next: str = "/") -> Response:
    if identity(request) is not None:
        return RedirectResponse(_local(next), status_code=303)
    return page(request, "signin.html", next=_local(next), has_accounts=inbox.accounts.exist())


@router.post("/signin")
async def signin(request: Request, form: CheckedForm, inbox: InboxDep) -> Response:
    name, password = form.get("username", ""), form.get("password", "")
    next_page = _local(form.get("next", "/"))
    client = inbox.settings.proxy.client_address(request)
    if wait := inbox.limiter.retry_after(name, client):
        message = f"Too many failed sign-ins. Try again in {wait} seconds."
        return page(request, "signin.html", 429, next=next_page, message=message)
    if not inbox.accounts.check_password(name, password):
        inbox.limiter.failed(name, client)
        message = "Wrong user name or password."
        return page(request, "signin.html", 401, next=next_page, message=message)
    inbox.limiter.succeeded(name, client)
    start_session(request, name)
    return RedirectResponse(next_page, status_code=303)


@router.post("/signout")
async def signout(request: Request, _: CheckedForm, inbox: InboxDep) -> Response:
    user = session_of(request).user
    start_session(request, None)
    if user is not None:
        try:  # every session of this account, in every browser, ends here
            inbox.accounts.end_sessions(user)
        except AccountsError:
            log.exception("Sign-out of %s could not end its other sessions", user)
            return error(
                request,
                500,
                "This browser is signed out, but your other sessions could not be ended: "
                "the inbox cannot write its accounts file. It was logged.",
            )
    return RedirectResponse("/signin", status_code=303)


def _local(target: str) -> str:
    """Only paths on this site: never an open redirect to another one."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
