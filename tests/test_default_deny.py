"""Default-deny: whatever the model says, only a read-only tool whose request and arguments
trip no content rule runs without a person. The model here calls everything safe."""

import pytest

from models.models import ProposedAction, RecordedWorkflowInput
from models.tools import EffectPreview, ToolCall
from policy.default_deny import (
    CHANGES_DATA_REASON,
    NO_TOOL_REASON,
    assess,
    tool_call_reasons,
    tool_call_stages,
)
from policy.risk_policy import LARGE_AMOUNT_STAGES, assess_risk
from tests.test_tools import WRITE_CALLS, call
from tools.registry import TOOLS

# Requests a prompt-injected model would call safe, each with the call it proposes. The
# wording avoids the content rules on purpose: default-deny must hold without them.
SNEAKY = [
    ("Tidy up the German accounts", WRITE_CALLS["delete_records"]),
    ("Mark the German folks as dormant", WRITE_CALLS["update_records"]),
    ("Top up the rainy-day pot", WRITE_CALLS["transfer_funds"]),
    ("Say hello to the beta group", WRITE_CALLS["send_email"]),
    ("Let ada help out with everything", call("grant_role", username="ada1", role="admin")),
    ("Ada no longer needs to look", call("revoke_role", username="ada1", role="viewer")),
    ("Settle number 7", call("pay_invoice", invoice_id=7, from_account="operating")),
    ("Quick fix on three accounts", WRITE_CALLS["run_sql"]),
    ("Just look something up", call("run_sql", statement="SELECT COUNT(*) FROM users")),
]


def safe_label(user_request: str, tool_call: ToolCall | None = None) -> ProposedAction:
    """What a model that labels everything safe proposes."""
    return ProposedAction(
        action_type="do_it",
        description=user_request,
        reasoning="harmless",
        risky_action=False,
        tool_call=tool_call,
    )


def requires_a_person(user_request: str, tool_call: ToolCall | None) -> list[str]:
    """The content floor and default-deny together: the run's own assessment (workflow
    code, ``default_deny.assess``), of a proposal the model calls safe."""
    run_input = RecordedWorkflowInput(user_request=user_request)
    risk = assess(run_input, safe_label(user_request, tool_call), None)
    assert risk.requires_approval is bool(risk.reasons)
    return risk.reasons


@pytest.mark.parametrize(("user_request", "tool_call"), SNEAKY)
def test_no_tool_that_changes_data_runs_without_a_person(
    user_request: str, tool_call: ToolCall
) -> None:
    assert assess_risk(user_request, safe_label(user_request)).reasons == []  # the floor misses
    assert CHANGES_DATA_REASON.format(tool=tool_call.tool) in requires_a_person(
        user_request, tool_call
    )


def test_every_registered_tool_that_is_not_read_only_asks() -> None:
    for name, tool in TOOLS.items():
        if not tool.read_only:
            assert CHANGES_DATA_REASON.format(tool=name) in tool_call_reasons(WRITE_CALLS[name])


def test_the_ad_hoc_sql_tool_always_asks_even_to_read() -> None:
    reasons = tool_call_reasons(call("run_sql", statement="SELECT 1"))
    assert "run_sql always asks a person" in reasons


def test_a_read_only_look_up_with_nothing_suspicious_runs_alone() -> None:
    look_up = call(
        "find_records",
        table="customers",
        filters=[{"column": "country", "op": "=", "value": "DE"}],
        limit=5,
    )
    assert requires_a_person("Show me five customers in Germany", look_up) == []
    assert tool_call_reasons(call("account_balances")) == []


def test_content_rules_stay_a_floor_for_read_only_tools() -> None:
    """A read-only call still asks when the request or an argument trips a rule."""
    snooping = call(
        "find_records",
        table="users",
        filters=[{"column": "username", "op": "like", "value": "%admin%"}],
        limit=50,
    )
    assert tool_call_reasons(snooping) == ["grants permissions or access"]
    harmless = call("account_balances")
    assert requires_a_person("List production credentials", harmless) == [
        "targets production",
        "touches credentials or keys",
    ]


@pytest.mark.parametrize(
    ("tool_call", "reason"),
    [
        (None, NO_TOOL_REASON),
        (call("shell", command="git push --force origin main"), "unknown tool 'shell'"),
        (call("find_records", table="sqlite_master", filters=[], limit=5), "invalid arguments"),
        (call("find_records", table="users", filters=[]), "limit: Field required"),
        (call("account_balances", everything=True), "invalid arguments for account_balances"),
    ],
)
def test_no_tool_an_unknown_tool_or_invalid_arguments_ask(
    tool_call: ToolCall | None, reason: str
) -> None:
    reasons = tool_call_reasons(tool_call)
    assert len(reasons) == 1
    assert reason in reasons[0]
    assert "default-deny" in reasons[0]


def preview(amount_cents: int) -> EffectPreview:
    return EffectPreview(
        tool="transfer_funds", summary="", affected=2, amount_cents=amount_cents, fingerprint="f"
    )


def test_a_large_amount_in_the_preview_is_staged() -> None:
    assert tool_call_stages(preview(1_000_000)) == list(LARGE_AMOUNT_STAGES)  # $10,000
    assert tool_call_stages(preview(999_999)) == []
    assert tool_call_stages(None) == []


def test_the_runs_assessment_stages_by_the_previewed_amount() -> None:
    """The effect comes with the proposal, so the run's one assessment already sees the
    amount: a transfer whose words name none is staged by its preview."""
    run_input = RecordedWorkflowInput(user_request="Top up the rainy-day pot")
    action = safe_label(run_input.user_request, WRITE_CALLS["transfer_funds"])
    assert assess(run_input, action, preview(1_000_000)).stages == list(LARGE_AMOUNT_STAGES)
    assert assess(run_input, action, preview(999_999)).stages == []
