"""How much a run accepts, in one place, and the checks every entrance calls.

Temporal refuses any payload over 2 MB, and a workflow copies what it is given: the request
into the approval request, the proposal into the votes, the notes into the audit trail,
all of it into the result and the status query's answer. A run whose workflow task builds
a payload over the limit fails that task on every retry and never moves again. So every
entrance (``start_workflow``, ``send_approval``, the inbox, the ``submit_decision`` update,
both signals, the analysis activity for the model's own answer) refuses what is over these
limits, with the limit named; nothing is cut silently.

The limits are chosen so that the largest run they allow stays under half of 2 MB even if
every character is the costliest one in JSON (a control character, written ``\\u0001``:
6 bytes). The README's "Input limits" section shows the arithmetic, and
``tests/test_limits.py`` builds that largest status and measures it.

The checks are plain functions returning why, or None: the workflow calls them from its
handlers (deterministic, no I/O), the scripts from their argument parsing.
"""

import json
import math
from typing import Any, NoReturn

from pydantic_core import to_json

from models.models import ApprovalDecision, ProposedAction, WorkflowInput

MAX_REQUEST_CHARS = 16_000  # the user's request: a page or two, a pasted log excerpt
MAX_NOTES_CHARS = 1_000  # a reviewer's notes
MAX_NAME_CHARS = 100  # a reviewer, requester, approver or stage name; a request ID
MAX_APPROVERS = 10  # named approvers, escalation tier included; also the largest quorum
MAX_VOTES = MAX_APPROVERS  # votes one request counts (anyone may vote when none are named)
MAX_STAGES = 10  # approval stages of one request

# The proposed action, from the model or amended by a reviewer.
MAX_ACTION_TYPE_CHARS = 100
MAX_DESCRIPTION_CHARS = 1_000
MAX_REASONING_CHARS = 2_000
MAX_PARAMETERS = 10  # names at most MAX_NAME_CHARS each
MAX_PARAMETER_VALUE_CHARS = 500
# A tool call, in bytes of JSON (so no character is costlier than another): the longest
# any tool's arguments take in plain text (an e-mail: a 5,000-character body, a subject, an
# address) fits. The tools' own argument models bound each value, but only once a preview
# validates them: this bounds what a run stores first, a reviewer's amended call included.
MAX_TOOL_CALL_BYTES = 6_000
# How deep a reviewer's edited arguments nest (no tool's arguments nest past 3): the run
# copies them into its status and into a continued run's input, several levels deeper, and
# a payload nested past about 200 levels cannot be decoded there.
MAX_ARGUMENT_DEPTH = 16
# The model's raw answer, checked before it is parsed: every field at its limit, even with
# every character escaped in JSON (6 characters each), plus room for a fence and spacing.
MAX_MODEL_ANSWER_CHARS = 64_000

# The audit trail (state, so also in the result and the status query). The workflow's
# history keeps every signal and update anyway; the trail tells the story within bounds.
MAX_ITEMISED_REFUSALS = 20  # refused decisions listed one by one; later ones are counted
MAX_REFUSAL_DETAIL_CHARS = 300  # a refusal's reason, as recorded
MAX_AUDIT_DETAIL_CHARS = 2_500  # any other event's detail (an amendment shows two actions)
# All events other than refusals: their names and details, and 64 for each entry's time.
AUDIT_STORY_MAX_CHARS = 22_000


def cut(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and how long it was.
    For text the workflow or the offline analyser writes (an audit detail, a summary, a
    description); what a person or the model gives over a limit is refused, not cut."""
    if len(text) <= limit:
        return text
    note = f"... [cut: {len(text):,} characters]"
    return text[: max(limit - len(note), 0)] + note


def too_long(what: str, text: str, limit: int) -> str | None:
    """``what is N characters; the limit is L``, or None when ``text`` fits."""
    if len(text) <= limit:
        return None
    return f"{what} is {len(text):,} characters; the limit is {limit:,}"


def too_many(what: str, count: int, limit: int) -> str | None:
    if count <= limit:
        return None
    return f"{count:,} {what}; the limit is {limit:,}"


def first_problem(*problems: str | None) -> str | None:
    return next((problem for problem in problems if problem is not None), None)


def names_problem(what: str, names: list[str]) -> str | None:
    """The first name in ``names`` over MAX_NAME_CHARS, named by position, or None."""
    return first_problem(
        *(too_long(f"{what} {n}", name, MAX_NAME_CHARS) for n, name in enumerate(names, 1))
    )


def run_input_problem(run_input: WorkflowInput) -> str | None:
    """Why a new run's input is over a limit, or None. Called by ``start_workflow`` and the
    inbox before anything starts, and by the workflow for starts that bypass them (the
    Temporal CLI, another client): there the run ends at once with outcome input_refused."""
    escalation = run_input.escalation.approvers if run_input.escalation else []
    named = len(run_input.approvers) + len(escalation)  # a repeated name counts each time
    return first_problem(
        too_long("the request", run_input.user_request, MAX_REQUEST_CHARS),
        too_long("the requester", run_input.requester or "", MAX_NAME_CHARS),
        names_problem("approver", run_input.approvers),
        names_problem("escalation approver", escalation),
        too_many("approvers named (escalation included)", named, MAX_APPROVERS),
        too_many("approvals required", run_input.voting.required_approvals, MAX_APPROVERS),
        too_many("approval stages", len(run_input.approval_stages), MAX_STAGES),
        names_problem("stage", run_input.approval_stages),
        too_many("stages with approvers", len(run_input.stage_approvers), MAX_STAGES + 1),
        names_problem("stage", list(run_input.stage_approvers)),
        *(
            _prefixed(f"stage {stage[:MAX_NAME_CHARS]!r}: ", stage_members_problem(members))
            for stage, members in run_input.stage_approvers.items()
        ),
    )


def stage_members_problem(members: list[str]) -> str | None:
    """Why a stage's members are over a limit, or None."""
    return first_problem(
        too_many("approvers", len(members), MAX_APPROVERS), names_problem("approver", members)
    )


def action_problem(action: ProposedAction) -> str | None:
    """Why a proposed action (the model's, or a reviewer's amendment) is over a limit."""
    return first_problem(
        too_long("action_type", action.action_type, MAX_ACTION_TYPE_CHARS),
        too_long("description", action.description, MAX_DESCRIPTION_CHARS),
        too_long("reasoning", action.reasoning, MAX_REASONING_CHARS),
        too_many("parameters", len(action.parameters), MAX_PARAMETERS),
        *(too_long("a parameter name", name, MAX_NAME_CHARS) for name in action.parameters),
        *(
            too_long(f"parameter {name!r}", value, MAX_PARAMETER_VALUE_CHARS)
            for name, value in action.parameters.items()
            if len(name) <= MAX_NAME_CHARS
        ),
    )


def tool_call_problem(action: ProposedAction) -> str | None:
    """Why an action's tool call is over ``MAX_TOOL_CALL_BYTES`` as JSON, or None."""
    if action.tool_call is None:
        return None
    size = len(action.tool_call.model_dump_json().encode())
    if size <= MAX_TOOL_CALL_BYTES:
        return None
    return f"the tool call is {size:,} bytes as JSON; the limit is {MAX_TOOL_CALL_BYTES:,}"


def edited_arguments(text: str) -> dict[str, Any]:
    """A reviewer's edit of a tool call's arguments (``send_approval --edit-arguments``, the
    inbox's form): a JSON object within the tool call's limit. Raises ValueError saying
    what is wrong, never quoting the text; the tool's schema judges the arguments when the
    workflow previews the edited call."""
    try:
        arguments = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"not JSON ({err})") from None
    if not isinstance(arguments, dict):
        raise ValueError('must be a JSON object of the arguments by name, e.g. {"table": "users"}')
    bounded_arguments(arguments)
    size = len(to_json(arguments))
    if size > MAX_TOOL_CALL_BYTES:
        raise ValueError(f"is {size:,} bytes as JSON; the limit is {MAX_TOOL_CALL_BYTES:,}")
    return arguments


def bounded_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """Edited arguments that a run can copy into its status and into a continued run, else
    ValueError saying why: a typed edit, and the inbox API's ``amended_arguments`` (whose
    size the decision's own check bounds)."""
    if _depth(arguments) > MAX_ARGUMENT_DEPTH:
        raise ValueError(f"nests deeper than {MAX_ARGUMENT_DEPTH} levels")
    return arguments


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _depth(value: object) -> int:
    """How many objects and arrays nest in ``value``, the outermost counted. Infinity is
    refused on the way (1e400 parses to it): JSON cannot carry it, the run would get null."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a number is too large")
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def decision_problem(decision: ApprovalDecision) -> str | None:
    """Why a decision is over a limit, or None.

    Called by ``send_approval`` and the inbox before sending, and by the workflow for every
    decision (update or signal), which refuses it like any other refused decision. The
    reasons never repeat the text at fault: a refusal is recorded, and it must stay small.
    """
    amended = decision.amended_action
    return first_problem(
        too_long("the request ID", decision.request_id, MAX_NAME_CHARS),
        too_long("the reviewer name", decision.reviewer, MAX_NAME_CHARS),
        too_long("the reviewer notes", decision.reviewer_notes, MAX_NOTES_CHARS),
        too_long("the stage", decision.stage or "", MAX_NAME_CHARS),
        _prefixed("the amended action: ", action_problem(amended) if amended else None),
        _prefixed("the amended action: ", tool_call_problem(amended) if amended else None),
    )


def votes_problem(votes_counted: int) -> str | None:
    """Why one more vote cannot be counted: the request holds ``MAX_VOTES`` already. Only
    reachable when anyone may vote; named approvers are fewer than that."""
    if votes_counted < MAX_VOTES:
        return None
    return f"this request already counts {votes_counted} votes, the most one request takes"


def _prefixed(prefix: str, problem: str | None) -> str | None:
    return None if problem is None else prefix + problem
