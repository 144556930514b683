"""The tool activities as Temporal runs them: errors that retrying cannot fix are
non-retryable; drift is an outcome, not a failure."""

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.execute_tool import execute_tool_call
from activities.preview_tool_call import preview_tool_call
from constants import STATE_DIR_ENV
from models.tools import ExecuteToolInput, ToolStatus
from tests.test_tools import WRITE_CALLS, balance, call, change
from tools.database import DATABASE_FILE


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    return tmp_path / DATABASE_FILE


async def test_preview_then_execute_once(db_path: Path) -> None:
    env = ActivityEnvironment()
    transfer = WRITE_CALLS["transfer_funds"]
    preview = await env.run(preview_tool_call, transfer)
    request = ExecuteToolInput(
        idempotency_key="wf/req", call=transfer, approved_fingerprint=preview.fingerprint
    )
    first = await env.run(execute_tool_call, request)
    second = await env.run(execute_tool_call, request)
    assert first.status is ToolStatus.EXECUTED
    assert second == first
    assert balance(db_path, "reserve") == 27_500_000


async def test_drift_is_an_outcome(db_path: Path) -> None:
    env = ActivityEnvironment()
    transfer = WRITE_CALLS["transfer_funds"]
    preview = await env.run(preview_tool_call, transfer)
    change(db_path, "UPDATE accounts SET balance_cents = 1 WHERE id = 'reserve'")
    outcome = await env.run(
        execute_tool_call,
        ExecuteToolInput(
            idempotency_key="k", call=transfer, approved_fingerprint=preview.fingerprint
        ),
    )
    assert outcome.status is ToolStatus.DRIFTED
    assert balance(db_path, "reserve") == 1


@pytest.mark.parametrize(
    ("request_", "error_type"),
    [
        (ExecuteToolInput(idempotency_key="k", call=call("nope")), "InvalidToolCall"),
        (ExecuteToolInput(idempotency_key="k", call=WRITE_CALLS["send_email"]), "ApprovalMissing"),
    ],
)
async def test_calls_outside_the_contract_fail_without_retries(
    db_path: Path, request_: ExecuteToolInput, error_type: str
) -> None:
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(execute_tool_call, request_)
    assert failed.value.type == error_type
    assert failed.value.non_retryable
