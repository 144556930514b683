"""How the pages are rendered: Jinja2 with autoescaping on everywhere (untrusted text is only
ever rendered as text), the filters the templates use, and the live regions' versions (the
script swaps a region in when its version changes)."""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from console_format import answer_of
from inbox.context import identity, inbox_of, session_of, via_proxy
from inbox.request_limits import MAX_FORM_PART_BYTES
from inbox.views import in_words, status_json
from inbox.visible_text import finalize
from models.models import WorkflowState, WorkflowStatus

TEMPLATES = Path(__file__).parent / "templates"


def template_environment() -> Environment:
    """Autoescaping on for every template, whatever its name; unknown names fail loudly;
    every value shown with its invisible characters made visible (``visible_text.py``)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=finalize,  # invisible and bidi characters shown as escapes, everywhere
    )
    env.filters["urlid"] = lambda value: quote(str(value), safe="")
    env.filters["iso"] = _iso
    env.filters["utc"] = _utc
    env.filters["left"] = _time_left
    env.filters["words"] = in_words
    # A form field longer than this is refused whole (request_limits.py); a textarea stops there.
    env.globals["MAX_FORM_PART_BYTES"] = MAX_FORM_PART_BYTES
    env.filters["answer"] = answer_of  # a read-only tool's rows, as the terminal shows them
    return env


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """A template, with who is asking and their CSRF token (every form carries it)."""
    context |= {
        "user": identity(request),
        "csrf_token": session_of(request).csrf,
        "via_proxy": via_proxy(request) is not None,
    }
    templates = inbox_of(request).templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def list_page(
    request: Request, name: str, items: list[dict[str, Any]], token: str | None, **context: Any
) -> Response:
    """A list's page: its rows, a link to the next (older) page, and one back to the
    newest when this is not the first."""
    next_url = next_page_url(request, token)
    first_url = _with_page_token(request, None) if "page_token" in request.query_params else None
    links = {"next_url": next_url, "first_url": first_url}
    version = _version([items, links])
    return page(request, name, items=items, version=version, **links, **context)


def request_page(
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


def next_page_url(request: Request, token: str | None) -> str | None:
    """The next (older) page's URL; None after the last page."""
    return _with_page_token(request, token) if token is not None else None


def _with_page_token(request: Request, token: str | None) -> str:
    """This list's URL (same path and filters) at the page ``token`` names, or (None) at its
    first page."""
    params = {k: v for k, v in request.query_params.items() if k != "page_token"}
    if token is not None:
        params["page_token"] = token
    return request.url.path + (f"?{urlencode(params)}" if params else "")


def _in_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(value: datetime | str) -> str:
    """A ``<time datetime>``: the page's script shows it in the reader's own time zone."""
    return _in_utc(value).isoformat(timespec="seconds")


def _utc(value: datetime | str) -> str:
    """What a page without scripts shows: the time in UTC, labelled so."""
    return _in_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _time_left(deadline: datetime | str) -> str:
    """What the countdown shows before the script takes over (or without it)."""
    if isinstance(deadline, str):
        deadline = datetime.fromisoformat(deadline)
    seconds = int((deadline - datetime.now(UTC)).total_seconds())
    if seconds <= 0:
        return "deadline passed"
    return f"{seconds // 60}:{seconds % 60:02d} left"


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
