"""What a run started on 1.0 still does with an approval's edit, until no such run is open.

Version ``EDITS_CHANGE_THE_CALL`` (``constants.py``) made an edit change the tool call's
arguments and nothing else (``decision_rules.amendment_problem``), and asks about every
edited call again. A run without its marker started on 1.0, and its history holds 1.0's
commands: an approval could amend anything, the amended action was previewed only if its
call changed, and it ran at once, on the same approval, when it added no risk.

These are the only 1.0 branches. Delete this module, its two uses in
``human_in_the_loop_workflow.py`` and the version once no 1.0 run is open
(``docs/versioning.md``).
"""

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.models import ProposedAction
    from models.tools import ToolCall
    from policy.default_deny import reassess

if TYPE_CHECKING:
    from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow


def any_amendment(amended: ProposedAction, current: ProposedAction) -> None:
    """1.0's amendment rule: an approval may amend anything (the words, the call, the tool,
    or drop the call); the re-ask below judges what it changed."""
    return None


async def amendment_adds_risk(
    run: "HumanInTheLoopWorkflow", asked: ToolCall | None, request_id: str
) -> bool:
    """1.0's re-ask after an approved amendment (``run._action`` is already the amended
    action; ``asked`` is the call the approval was given for, whose effect was previewed):
    preview the call if it changed, and ask again only if that or the risk is new."""
    added: list[str] = []
    call = run._action.tool_call if run._action else None
    if call != asked:
        if call is None:
            run._tool_call.preview = None
            run._audit.record("effect_previewed", "no tool call: nothing to preview")
            added.append("a new effect: no tool call")
        elif await run._preview():
            preview = run._tool_call.preview
            added.append(f"a new effect: {preview.summary if preview else 'no tool call'}")
        else:
            added.append("the amended tool call's effect could not be worked out")
    assert run._action is not None and run._risk is not None
    more, run._risk = reassess(run._input, run._action, run._risk, run._tool_call.preview)
    added = [*more, *added]
    if not added:
        run._audit.record("amendment_assessed", "no new risk: the approval covers it")
        return False
    run._audit.record(
        "approval_reopened",
        f"the amended action adds: {'; '.join(added)}; the approval of request "
        f"{request_id} does not cover it",
    )
    return True
