"""The risk assessment as an activity (a local one in runs recorded before
``risk-assessed-in-activity``): its answer is recorded in the run's history.

The policy is deterministic, so it could run in workflow code; but then every replay would
run the policy the worker has *then*, and a rule change would alter runs already waiting
on the old answer. Recorded once, the assessment a run acted on stays the one it acted on.
Runs started under tool calls are assessed default-deny (``workflows/default_deny.py``).
"""

from temporalio import activity

from models.models import AssessRiskInput, RiskAssessment
from workflows.default_deny import assess_with_default_deny


@activity.defn
async def assess_risk(request: AssessRiskInput) -> RiskAssessment:
    """Assess the proposed action (and any explicit approvers or stages) by the policy."""
    return assess_with_default_deny(request)
