"""The plain rules of a run's tool call: the effect asked about, how often a run asks again
after drift, and what a re-ask after drift requires."""

from models.models import RiskAssessment
from models.tools import EffectPreview, ToolCall, ToolOutcome, ToolStatus
from policy.default_deny import still_asks
from workflows.tool_steps import MAX_PREVIEWS, ToolCallState

CALL = ToolCall(tool="delete_records", arguments={"table": "users", "filters": []})


def preview(affected: int) -> EffectPreview:
    return EffectPreview(
        tool=CALL.tool, summary=f"deletes {affected}", affected=affected, fingerprint=f"f{affected}"
    )


def test_the_analysis_preview_is_the_effect_asked_about_and_counts_as_the_first() -> None:
    """``propose_action`` works the effect out with the proposal: that is the effect people
    are asked about, and it is counted against the re-asks after drift."""
    state = ToolCallState()
    assert state.proposed(preview(3)) == ("effect_previewed", "deletes 3")
    assert (state.preview, state.previews) == (preview(3), 1)


def test_drift_shows_the_fresh_effect_and_asks_again_only_a_few_times() -> None:
    state = ToolCallState()
    state.proposed(preview(3))
    fresh = preview(4)
    drift = ToolOutcome(
        idempotency_key="k", tool=CALL.tool, status=ToolStatus.DRIFTED, summary="", preview=fresh
    )
    for _ in range(MAX_PREVIEWS - 1):
        assert state.may_ask_again()
        state.drifted(drift)
    assert state.preview == fresh
    assert not state.may_ask_again()


def test_after_drift_a_person_is_asked_for_every_reason_old_and_new() -> None:
    before = RiskAssessment(requires_approval=True, reasons=["a"], stages=[])
    fresh = RiskAssessment(requires_approval=False, reasons=["b"], stages=["manager"])
    again = still_asks(before, fresh)
    assert again.requires_approval
    assert again.reasons == ["a", "b"]
    assert again.stages == ["manager"]
