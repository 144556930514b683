"""The plain rules behind the approval contract, called directly: stage IDs, what an
amendment adds, explicit settings, the decision update ID, and the pending list."""

from typing import Any

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

import start_workflow
from approval_status import list_pending
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE, STAGE_ID_MARKER, WORKFLOW_TYPE
from models.limits import MAX_NAME_CHARS, MAX_STAGES
from models.models import (
    ApprovalStatus,
    AssessRiskInput,
    ProposedAction,
    RecordedWorkflowInput,
    RiskAssessment,
    WorkflowInput,
)
from policy.risk_policy import (
    EXPLICIT_SETTINGS_REASON,
    LARGE_AMOUNT_STAGES,
    adds_requirements,
    assess_request,
)
from tests.helpers import wait_until
from workflows.stage_ids import MAX_WORKFLOW_ID_LENGTH, reserved_for_stages, stage_child_id

REQUEST_ID = "0b5c6a4e-1f2d-4c3b-9a8e-7d6f5e4c3b2a"
SAFE = ProposedAction(
    action_type="summarise", description="Summarise the guide", reasoning="", risky_action=False
)


def test_a_stage_id_names_the_run_the_request_the_position_and_the_stage() -> None:
    assert stage_child_id("hitl-1", REQUEST_ID, 2, "cfo") == f"hitl-1/stage/{REQUEST_ID}/2-cfo"


def test_a_stage_id_fits_temporals_limit_whatever_the_workflow_id() -> None:
    """The longest workflow ID and the longest stage name a run accepts (names are refused
    over MAX_NAME_CHARS at start) still make an ID Temporal takes, ending as the stage's."""
    longest_stage = "x" * MAX_NAME_CHARS
    child_id = stage_child_id("w" * MAX_WORKFLOW_ID_LENGTH, REQUEST_ID, MAX_STAGES, longest_stage)
    assert len(child_id) <= MAX_WORKFLOW_ID_LENGTH
    assert child_id.endswith(f"/stage/{REQUEST_ID}/{MAX_STAGES}-{longest_stage}")


def test_each_round_of_asking_gets_its_own_stage_ids() -> None:
    """A later round (after an amendment or a drift) has a new request ID, so a decision
    sent to an earlier round's stage can never reach the later one's."""
    other_round = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
    assert stage_child_id("w", REQUEST_ID, 1, "cfo") != stage_child_id("w", other_round, 1, "cfo")


def test_repeated_stage_names_get_different_ids() -> None:
    assert stage_child_id("w", REQUEST_ID, 1, "legal") != stage_child_id(
        "w", REQUEST_ID, 2, "legal"
    )


def test_workflow_ids_in_the_stage_form_are_refused_at_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert reserved_for_stages(f"mine{STAGE_ID_MARKER}{REQUEST_ID}/1-cfo")
    with pytest.raises(SystemExit):
        start_workflow.parse_args(["Pay ACME", "--workflow-id", f"a/stage/{REQUEST_ID}/1-cfo"])
    assert "kept for stage IDs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fields", "required"),
    [({"approvers": ["bob"]}, True), ({"approval_stages": ["legal"]}, True), ({}, False)],
)
def test_explicit_approvers_or_stages_require_approval(
    fields: dict[str, Any], required: bool
) -> None:
    risk = assess_request(
        AssessRiskInput(user_request="Summarise the guide", action=SAFE, **fields)
    )
    assert risk.requires_approval is required
    assert (EXPLICIT_SETTINGS_REASON in risk.reasons) is required
    assert risk.stages == fields.get("approval_stages", [])


def test_the_assessment_chooses_stages_for_large_amounts() -> None:
    action = SAFE.model_copy(update={"description": "Wire $500,000 to account 9999"})
    risk = assess_request(AssessRiskInput(user_request="Pay ACME", action=action))
    assert risk.stages == list(LARGE_AMOUNT_STAGES)


def test_an_amendment_adds_new_reasons_and_stages_but_not_old_ones() -> None:
    before = RiskAssessment(requires_approval=True, reasons=["moves money"])
    same = RiskAssessment(requires_approval=True, reasons=["moves money"])
    riskier = RiskAssessment(requires_approval=True, reasons=["moves money", "targets production"])
    staged = RiskAssessment(requires_approval=True, reasons=["moves money"], stages=["cfo"])
    assert adds_requirements(before, same) == []
    assert adds_requirements(before, riskier) == ["targets production"]
    assert adds_requirements(before, staged) == ["approval in stages: cfo"]
    assert adds_requirements(riskier, before) == []


def test_stage_names_are_checked_at_the_entrance_only() -> None:
    stored = {"user_request": "x", "approval_stages": ["legal team"], "approvers": ["bob"]}
    assert RecordedWorkflowInput.model_validate(stored).approval_stages == ["legal team"]
    with pytest.raises(ValueError):
        WorkflowInput.model_validate(stored)


async def test_a_terminated_run_is_not_listed_as_pending(
    dev_client: Client, task_queue: str, workflow_id: str
) -> None:
    """It keeps ``ApprovalStatus=Pending`` (terminate runs no workflow code), so the list
    also asks for running executions."""
    pending = TypedSearchAttributes(
        [
            SearchAttributePair(
                SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE),
                ApprovalStatus.PENDING.value,
            )
        ]
    )
    handle = await dev_client.start_workflow(
        WORKFLOW_TYPE,
        WorkflowInput(user_request="Pay ACME"),
        id=workflow_id,
        task_queue=task_queue,  # no worker: it stays as started
        search_attributes=pending,
    )
    await wait_until(lambda: list_pending(dev_client), lambda listed: workflow_id in listed)
    await handle.terminate("test")
    await wait_until(lambda: list_pending(dev_client), lambda listed: workflow_id not in listed)
