"""Every error the inbox answers, and how: a page for a person, ``{"error": ...}`` for the
API, never a traceback. Routes and dependencies raise; the handlers here answer."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from inbox.page_tokens import BadPageTokenError
from inbox.rendering import page
from inbox.service import NotFoundError, SealedError, StageOf, UnavailableError

log = logging.getLogger("inbox")


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


CSRF_MESSAGE = (
    "This form did not come from this inbox's page, or the page is too old. "
    "Nothing was changed; reload the page and try again."
)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error(request: Request, status: int, message: str) -> Response:
    if is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return page(request, "error.html", status, message=message, retry=status == 503)


def describe_errors(errors: Any) -> str:
    """'field: what is wrong' for each error, as one line."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _sign_in(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)


async def _stage(request: Request, exc: Exception) -> Response:
    """A stage's child ID: its request is decided on the parent's page."""
    assert isinstance(exc, StageOf)
    if is_api(request) or request.method != "GET":
        return error(request, 404, f"That is a stage of {exc.parent_id}; use that ID.")
    return RedirectResponse(f"/requests/{quote(exc.parent_id, safe='')}", status_code=303)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("Unexpected error on %s %s", request.method, request.url.path)
    return error(request, 500, "Something went wrong in the inbox; it was logged.")


def _answer(
    status: int | Callable[[Any], int], message: Callable[[Any], str]
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A handler answering with ``status`` (or ``status(exc)``) and ``message(exc)``."""

    async def handler(request: Request, exc: Exception) -> Response:
        code = status(exc) if callable(status) else status
        return error(request, code, message(exc))

    return handler


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(CsrfRefused, _answer(403, lambda _: CSRF_MESSAGE))
    app.add_exception_handler(ApiError, _answer(lambda e: e.status, lambda e: e.message))
    app.add_exception_handler(FormError, _answer(422, str))
    app.add_exception_handler(BadPageTokenError, _answer(422, str))
    app.add_exception_handler(NotFoundError, _answer(404, str))
    app.add_exception_handler(StageOf, _stage)
    # 403, not 503: the inbox lacks a key, and waiting will not give it one.
    app.add_exception_handler(SealedError, _answer(403, str))
    app.add_exception_handler(
        UnavailableError, _answer(503, lambda e: f"{e} This page retries by itself.")
    )
    app.add_exception_handler(
        RequestValidationError, _answer(422, lambda e: describe_errors(e.errors()))
    )
    app.add_exception_handler(
        StarletteHTTPException, _answer(lambda e: e.status_code, lambda e: str(e.detail))
    )
    app.add_exception_handler(Exception, _unexpected)
