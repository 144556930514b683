"""The pages a signed-in person uses: the pending and decided lists, a request's page, and
its decision form (a POST with a CSRF token; nothing changes on GET)."""

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from inbox.dependencies import CheckedForm, InboxDep, SignedIn, Temporal
from inbox.errors import FormError
from inbox.rendering import list_page, request_page
from inbox.service import MAX_PAGE_SIZE, PAGE_SIZE, RefusedError
from inbox.views import decided_item, pending_item
from models.limits import edited_arguments

router = APIRouter()
VERDICTS = {"approve": True, "reject": False, "approve_edited": True}
PAGE_SIZE_PARAMETER = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


@router.get("/")
async def pending_page(
    request: Request,
    user: SignedIn,
    inbox: InboxDep,
    mine: bool = False,
    page_token: str | None = None,
    page_size: int = PAGE_SIZE_PARAMETER,
) -> Response:
    tokens = inbox.page_tokens
    found = await inbox.temporal.pending(
        tokens.read("pending", page_token), page_size, for_user=user if mine else None
    )
    items = [pending_item(p) for p in found.items]
    token = tokens.make("pending", found.next_page_token)
    return list_page(request, "pending.html", items, token, mine=mine)


@router.get("/decided")
async def decided_page(
    request: Request,
    _: SignedIn,
    inbox: InboxDep,
    page_token: str | None = None,
    page_size: int = PAGE_SIZE_PARAMETER,
) -> Response:
    tokens = inbox.page_tokens
    found = await inbox.temporal.decided(tokens.read("decided", page_token), page_size)
    items = [decided_item(d) for d in found.items]
    return list_page(request, "decided.html", items, tokens.make("decided", found.next_page_token))


@router.get("/requests/{workflow_id:path}")
async def request_details(
    request: Request, workflow_id: str, _: SignedIn, temporal: Temporal, sent: str | None = None
) -> Response:
    status = await temporal.status(workflow_id)
    return request_page(request, workflow_id, status, sent=sent)


@router.post("/requests/{workflow_id:path}/decision")
async def decide_from_page(
    request: Request, workflow_id: str, user: SignedIn, form: CheckedForm, temporal: Temporal
) -> Response:
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
        return request_page(request, workflow_id, status, 409, refused=str(refused))
    sent = "approved" if VERDICTS[verdict] else "rejected"
    return RedirectResponse(f"/requests/{quote(workflow_id, safe='')}?sent={sent}", status_code=303)


def _edited_arguments(form: dict[str, str]) -> dict[str, Any]:
    try:
        return edited_arguments(form.get("arguments", ""))
    except ValueError as err:
        raise FormError(f"arguments: {err}") from None
