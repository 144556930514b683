"""Which runs wait for a decision, and which have closed with an outcome: visibility
queries on the ``ApprovalStatus`` search attribute, which need no worker."""

from collections.abc import AsyncIterator

from temporalio.client import Client, WorkflowExecution

from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
from models.models import ApprovalStatus

# Runs that wait for a decision: the workflow says so, and the run is still open (a
# terminated or timed-out run keeps the last value it set).
PENDING_RUNS_QUERY = (
    f'{APPROVAL_STATUS_SEARCH_ATTRIBUTE} = "{ApprovalStatus.PENDING.value}" '
    'AND ExecutionStatus = "Running"'
)
DECIDED_STATUSES = [
    s.value for s in ApprovalStatus if s not in (ApprovalStatus.PENDING, ApprovalStatus.ANALYSING)
]
# Runs that closed with an outcome of the agent.
DECIDED_RUNS_QUERY = (
    f"{APPROVAL_STATUS_SEARCH_ATTRIBUTE} IN ({', '.join(repr(s) for s in DECIDED_STATUSES)}) "
    'AND ExecutionStatus != "Running"'
)


def pending_runs(client: Client) -> AsyncIterator[WorkflowExecution]:
    """The runs waiting for a decision, newest first."""
    return client.list_workflows(PENDING_RUNS_QUERY)
