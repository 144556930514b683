"""The limits at the command line: ``start_workflow``, ``send_approval`` and the Temporal
CLI's JSON start, against a dev server and a ``python -m worker`` process.

At the limit each works end to end; one character over, the scripts stop before anything
is sent (usage line, exit 2, the limit named), and a start through the Temporal CLI, which
no script checks, ends at once with outcome ``input_refused``.
"""

import json
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

import demo
from constants import WORKFLOW_TYPE
from models.limits import (
    MAX_APPROVERS,
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_REQUEST_CHARS,
    MAX_TOOL_CALL_BYTES,
)
from models.models import Outcome, WorkflowResult
from tests.e2e import (
    WorkerProcess,
    approval_notice,
    cli_signal,
    script,
    send_approval,
    started_run,
    temporal_cli,
    unique,
)
from tests.record_histories import pending_request


def request_of(length: int) -> str:
    """A risky request (it deletes) of exactly ``length`` characters, unique to the test."""
    start = unique("Delete the rows listed here:")
    return start + " row" * ((length - len(start)) // 4) + "x" * ((length - len(start)) % 4)


def usage_error(ran_output: str, prog: str, reason: str) -> bool:
    return f"usage: {prog}" in ran_output and f"error: {reason}" in ran_output


async def test_start_and_send_approval_work_at_the_limits(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    request = request_of(MAX_REQUEST_CHARS)
    assert len(request) == MAX_REQUEST_CHARS
    notes = "n" * MAX_NOTES_CHARS
    reviewer = "r" * MAX_NAME_CHARS
    async with started_run(worker, dev_server, tmp_path, request) as run:
        notice = await approval_notice(worker, run)
        sent = await send_approval(
            worker,
            run,
            notice.request_id,
            "approve",
            notes,
            "--reviewer",
            reviewer,
        )
        done = await run.finish()
    assert sent.returncode == 0, sent.output
    assert done.returncode == 0, done.output
    assert f"Result: approved - Approved by {reviewer}; executed:" in done.output
    assert f"decision_approved: by {reviewer}: {notes}" in done.output


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["approve", "a note" + "!" * (MAX_NOTES_CHARS - 5), "--reviewer", "ann"],
            f"the notes is {MAX_NOTES_CHARS + 1:,} characters; the limit is {MAX_NOTES_CHARS:,}",
        ),
        (
            ["approve", "--reviewer", "r" * (MAX_NAME_CHARS + 1)],
            f"the reviewer name is {MAX_NAME_CHARS + 1} characters; the limit is {MAX_NAME_CHARS}",
        ),
        (
            [
                "approve",
                "--reviewer",
                "ann",
                "--edit-arguments",
                json.dumps({"body": "b" * (MAX_TOOL_CALL_BYTES - 10)}),
            ],
            f"argument --edit-arguments: is {MAX_TOOL_CALL_BYTES + 1:,} bytes as JSON; "
            f"the limit is {MAX_TOOL_CALL_BYTES:,}",
        ),
    ],
    ids=["notes", "reviewer", "edit arguments"],
)
async def test_send_approval_refuses_one_character_over_before_sending(
    worker: WorkerProcess, args: list[str], reason: str
) -> None:
    """No workflow is asked: the ID need not even exist."""
    ran = await script("send_approval", "no-such-run", *args, env=worker.env)
    assert ran.returncode == 2, ran.output
    assert usage_error(ran.stderr, "send_approval", reason), ran.output


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (
            [request_of(MAX_REQUEST_CHARS + 1)],
            f"the request is {MAX_REQUEST_CHARS + 1:,} characters; "
            f"the limit is {MAX_REQUEST_CHARS:,}",
        ),
        (
            ["Delete the logs", "--requester", "r" * (MAX_NAME_CHARS + 1)],
            f"the requester is {MAX_NAME_CHARS + 1} characters; the limit is {MAX_NAME_CHARS}",
        ),
        (
            ["Delete the logs"]
            + [arg for n in range(MAX_APPROVERS + 1) for arg in ("--approver", f"a{n}")],
            f"{MAX_APPROVERS + 1} approvers named (escalation included); "
            f"the limit is {MAX_APPROVERS}",
        ),
    ],
    ids=["request", "requester", "approvers"],
)
async def test_start_workflow_refuses_one_over_before_anything_starts(
    worker: WorkerProcess, options: list[str], reason: str
) -> None:
    ran = await script("start_workflow", *options, env=worker.env)
    assert ran.returncode == 2, ran.output
    assert usage_error(ran.stderr, "start_workflow", reason), ran.output
    assert "Started workflow" not in ran.output


async def temporal_start(worker: WorkerProcess, workflow_id: str, request: str) -> None:
    """`temporal workflow start --input '<WorkflowInput JSON>'`, as the README shows it."""
    started = await temporal_cli(
        "workflow",
        "start",
        "--address",
        worker.address,
        "--type",
        WORKFLOW_TYPE,
        "--task-queue",
        worker.task_queue,
        "--workflow-id",
        workflow_id,
        "--input",
        json.dumps({"user_request": request}),
        env=worker.env,
    )
    assert started.returncode == 0, started.output


async def test_the_temporal_cli_json_start_at_the_limit_is_decided(
    worker: WorkerProcess, dev_server: WorkflowEnvironment
) -> None:
    workflow_id = f"cli-{uuid.uuid4().hex[:12]}"
    await temporal_start(worker, workflow_id, request_of(MAX_REQUEST_CHARS))
    handle = dev_server.client.get_workflow_handle(workflow_id, result_type=WorkflowResult)
    try:
        await pending_request(handle)
        signalled = await cli_signal(worker, workflow_id, "approve", "true")
        assert signalled.returncode == 0, signalled.output
        result = await handle.result()
    finally:
        if (await handle.describe()).close_time is None:
            await handle.terminate("end of test")
    assert result.outcome == Outcome.APPROVED, result.message


async def test_the_temporal_cli_json_start_one_over_ends_input_refused(
    worker: WorkerProcess, dev_server: WorkflowEnvironment
) -> None:
    """No script stands between the Temporal CLI and the server: the workflow refuses it,
    and the run ends at once with the reason, instead of failing every workflow task."""
    workflow_id = f"cli-{uuid.uuid4().hex[:12]}"
    await temporal_start(worker, workflow_id, request_of(MAX_REQUEST_CHARS + 1))
    handle = dev_server.client.get_workflow_handle(workflow_id, result_type=WorkflowResult)
    result = await handle.result()
    assert result.outcome == Outcome.INPUT_REFUSED
    assert result.message == (
        f"Refused: the request is {MAX_REQUEST_CHARS + 1:,} characters; "
        f"the limit is {MAX_REQUEST_CHARS:,}."
    )


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (
            [request_of(MAX_REQUEST_CHARS + 1)],
            f"the request is {MAX_REQUEST_CHARS + 1:,} characters; "
            f"the limit is {MAX_REQUEST_CHARS:,}",
        ),
        (
            ["Delete the logs", "--approve", "n" * (MAX_NOTES_CHARS + 1)],
            f"the notes is {MAX_NOTES_CHARS + 1:,} characters; the limit is {MAX_NOTES_CHARS:,}",
        ),
    ],
    ids=["request", "notes"],
)
def test_the_demo_refuses_one_over_before_anything_starts(
    capsys: pytest.CaptureFixture[str], argv: list[str], reason: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        demo.parse_args(argv)
    assert stopped.value.code == 2
    assert usage_error(capsys.readouterr().err, "demo", reason)
    at_limit = demo.parse_args([request_of(MAX_REQUEST_CHARS), "--reject", "n" * MAX_NOTES_CHARS])
    assert at_limit.reject == "n" * MAX_NOTES_CHARS
