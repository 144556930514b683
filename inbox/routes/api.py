"""The JSON API, for programs: the same lists and decisions as the pages, with a bearer
token (``python -m inbox add-token``) instead of a session."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from inbox.dependencies import ApiUser, InboxDep, Temporal
from inbox.errors import ApiError, describe_errors
from inbox.rendering import next_page_url
from inbox.routes.pages import PAGE_SIZE_PARAMETER
from inbox.service import RefusedError
from inbox.views import decided_item, pending_item, status_json
from models.limits import MAX_NAME_CHARS, MAX_NOTES_CHARS, bounded_arguments

router = APIRouter(prefix="/api")


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

    @field_validator("amended_arguments")
    @classmethod
    def _bounded(cls, arguments: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if arguments is None else bounded_arguments(arguments)


@router.get("/requests")
async def api_list(
    request: Request,
    _: ApiUser,
    inbox: InboxDep,
    status: str = "pending",
    page_token: str | None = None,
    page_size: int = PAGE_SIZE_PARAMETER,
) -> Response:
    """One page of the list, newest first, as a JSON list; the next page's URL (with its
    ``page_token``) in a ``Link: <...>; rel="next"`` header, absent on the last page."""
    tokens, temporal = inbox.page_tokens, inbox.temporal
    if status == "pending":
        pending = await temporal.pending(tokens.read(status, page_token), page_size)
        items, token = [pending_item(p) for p in pending.items], pending.next_page_token
    elif status == "decided":
        decided = await temporal.decided(tokens.read(status, page_token), page_size)
        items, token = [decided_item(d) for d in decided.items], decided.next_page_token
    else:
        raise ApiError(422, "status: must be pending or decided")
    next_url = next_page_url(request, tokens.make(status, token))
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else None
    return JSONResponse(items, headers=headers)


@router.get("/requests/{workflow_id:path}")
async def api_status(workflow_id: str, _: ApiUser, temporal: Temporal) -> Response:
    status = await temporal.status(workflow_id)
    return JSONResponse(status_json(workflow_id, status))


@router.post("/requests/{workflow_id:path}/decision")
async def api_decide(
    request: Request, workflow_id: str, user: ApiUser, temporal: Temporal
) -> Response:
    try:
        body = DecisionBody.model_validate_json(await request.body())
    except ValidationError as err:
        raise ApiError(422, describe_errors(err.errors())) from None
    try:
        applied = await temporal.decide(
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
    return JSONResponse(applied.decision.model_dump(mode="json"))
