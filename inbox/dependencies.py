"""Who may call a route, as FastAPI dependencies: a signed-in person (session cookie or the
trusted proxy), an API caller (bearer token), and a form that passed the CSRF checks.

The identity found here is the reviewer recorded in the audit trail: no form field or
JSON field can set it. Declare ``SignedIn`` before ``CheckedForm``: a signed-out visitor
is sent to sign in before their form is judged.
"""

from typing import Annotated

from fastapi import Depends, Request

from inbox.auth import bearer_token, same_origin, tokens_match
from inbox.context import Inbox, identity, inbox_of, session_of
from inbox.errors import ApiError, CsrfRefused, SignInRequired
from inbox.request_limits import MAX_FORM_FIELDS, MAX_FORM_FILES, MAX_FORM_PART_BYTES
from inbox.service import TemporalService


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
    user = inbox_of(request).accounts.user_for_token(token)
    if user is None:
        raise ApiError(401, "invalid token")
    return user


async def checked_form(request: Request) -> dict[str, str]:
    """The form's text fields, once it is shown to come from our own page: same origin, and
    the CSRF token of the session that page was rendered for."""
    form = await request.form(
        max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES
    )
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    origin = inbox_of(request).settings.public_origin
    if not same_origin(request, origin) or not tokens_match(
        fields.get("csrf_token"), session_of(request).csrf
    ):
        raise CsrfRefused()
    return fields


def temporal_of(request: Request) -> TemporalService:
    return inbox_of(request).temporal


SignedIn = Annotated[str, Depends(signed_in)]
ApiUser = Annotated[str, Depends(api_user)]
CheckedForm = Annotated[dict[str, str], Depends(checked_form)]
Temporal = Annotated[TemporalService, Depends(temporal_of)]
InboxDep = Annotated[Inbox, Depends(inbox_of)]
