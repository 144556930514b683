"""The plain baseline: the least a human-in-the-loop workflow can do, to compare against.

One analysis activity call, one wait for one decision, one execute call, with the product's
own activities and no audit trail, notices, timers, rules or status query. The only extra
is marking itself ``ApprovalStatus=Pending`` while it waits, so that the benchmark counts
the parked runs of both workflows with the same visibility query.

The decision arrives the way the product's does, so that the two compare like for like: an
update (the path ``send_approval`` uses, which answers once the workflow applied it), or a
signal (the Temporal CLI's path, fire and forget), each measured for both subjects.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities.propose_action import AnalysisActivities
    from benchmarks.baseline_execute_action import ExecuteActionInput, execute_action
    from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
    from models.models import AnalysisRequest, ApprovalStatus

BASELINE_WORKFLOW_TYPE = "BaselineApprovalWorkflow"
BASELINE_DECIDE_SIGNAL = "decide"  # payload: true approves, false rejects
BASELINE_DECIDE_UPDATE = "submit_decision"  # the same payload; answers with it once applied
AUTO_APPROVED = "auto_approved"
APPROVED = "approved"
REJECTED = "rejected"

_APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)
_TIMEOUT = timedelta(seconds=120)


@workflow.defn(name=BASELINE_WORKFLOW_TYPE)
class BaselineApprovalWorkflow:
    def __init__(self) -> None:
        self._approved: bool | None = None

    @workflow.run
    async def run(self, user_request: str) -> str:
        """Return how the run ended: auto_approved, approved or rejected."""
        action = await workflow.execute_activity_method(
            AnalysisActivities.analyze_request,
            AnalysisRequest(user_request=user_request),
            start_to_close_timeout=_TIMEOUT,
        )
        outcome = AUTO_APPROVED
        if action.risky_action:
            workflow.upsert_search_attributes(
                [_APPROVAL_STATUS.value_set(ApprovalStatus.PENDING.value)]
            )
            await workflow.wait_condition(lambda: self._approved is not None)
            if not self._approved:
                return REJECTED
            outcome = APPROVED
        await workflow.execute_activity(
            execute_action,
            ExecuteActionInput(idempotency_key=workflow.info().workflow_id, action=action),
            start_to_close_timeout=_TIMEOUT,
        )
        return outcome

    @workflow.signal(name=BASELINE_DECIDE_SIGNAL)
    def decide(self, approved: bool) -> None:
        self._approved = approved

    @workflow.update(name=BASELINE_DECIDE_UPDATE)
    def submit_decision(self, approved: bool) -> bool:
        self._approved = approved
        return approved
