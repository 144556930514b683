"""The ``ApprovalStatus`` search attribute: where a run stands, for listing runs by it.

Set only when the starter set it (``start_workflow`` and the inbox do): an attribute the
namespace has not registered would fail the workflow task. An upsert that changes nothing
is skipped: each is a command, a history event and a visibility write.
"""

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
    from models.models import ApprovalStatus, Outcome

APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)
FINAL_APPROVAL_STATUS = {
    Outcome.AUTO_APPROVED: ApprovalStatus.AUTO_APPROVED,
    Outcome.APPROVED: ApprovalStatus.APPROVED,
    Outcome.REJECTED: ApprovalStatus.REJECTED,
    Outcome.TIMED_OUT: ApprovalStatus.TIMED_OUT,
    Outcome.ANALYSIS_FAILED: ApprovalStatus.FAILED,
    Outcome.EXECUTION_FAILED: ApprovalStatus.EXECUTION_FAILED,
    Outcome.CANCELLED: ApprovalStatus.CANCELLED,
    Outcome.STAGE_FAILED: ApprovalStatus.FAILED,
    Outcome.INPUT_REFUSED: ApprovalStatus.FAILED,
}


def set_approval_status(status: ApprovalStatus) -> None:
    """Upsert ``status`` if the run has the attribute and it differs (read from the run's
    own attributes, as its upserts left them, so a replay decides the same)."""
    current = workflow.info().typed_search_attributes.get(APPROVAL_STATUS)
    if current is not None and current != status.value:
        workflow.upsert_search_attributes([APPROVAL_STATUS.value_set(status.value)])
