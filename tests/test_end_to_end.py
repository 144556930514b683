"""End to end: the project's scripts run as real processes, exactly as a user runs them.

One real worker (``python -m worker``, the ``worker`` fixture) serves a private task queue on
the session's dev server for every end-to-end module. Each test starts its own run with
``start_workflow`` in the background, reads the approval notice from the worker's terminal
(its log), decides the way a user would (``send_approval`` or the Temporal CLI), then checks
what ``start_workflow`` printed and how it exited. Only the outside of the system is used, so
these tests catch wiring mistakes that in-process tests cannot: environment variables, console
output, exit codes, CLI recipes. The helpers are in ``tests/e2e.py``.
"""

import getpass
import json
import os
import time
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from benchmarks.fake_openai import FakeOpenAIServer, ok
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVE_SIGNAL,
    STATUS_QUERY,
    WEBHOOK_TOKEN_ENV,
    WEBHOOK_URL_ENV,
)
from models.models import WorkflowState
from tests.e2e import (
    PASTING_USER,
    ApprovalNotice,
    BackgroundRun,
    Ran,
    WorkerProcess,
    approval_notice,
    cli_signal,
    notices_for,
    script,
    send_approval,
    started_run,
    temporal_cli,
    unique,
)
from tests.helpers import script_env, script_risky_proposal, status_of, wait_until

# What the stand-in's tool call for a request no offline rule maps does: one e-mail.
EMAILED = "queued 1 e-mail to 1 recipients in the outbox (never sent)"
# The analysis gives up on a model that keeps answering prose after this many answers.
PROSE_ANSWERS = 3


def confirmation(reviewer: str, verdict: str, notice: ApprovalNotice, run: BackgroundRun) -> str:
    """What send_approval prints once the workflow applied the decision."""
    return f"{reviewer} {verdict} request {notice.request_id} of workflow {run.workflow_id}.\n"


async def test_safe_request_is_auto_approved_and_prints_the_audit_trail(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """No risk, no human: the run executes on its own and says so."""
    request = unique("Summarise the weekly sales report")
    async with started_run(worker, dev_server, tmp_path, request) as run:
        done = await run.finish()

    assert f"Started workflow. Workflow ID: {run.workflow_id}" in done.output
    assert "Result: auto_approved - Auto-approved (no risk found)" in done.output
    assert "Audit trail:" in done.output
    assert "risk_classified: no risk\n" in done.output
    # The offline analyser reads with a read-only tool: the only kind that runs unasked. Its
    # effect is worked out with the proposal (one activity) and recorded before the risk.
    trail = done.output[done.output.index("Audit trail:") :]
    assert trail.index("action_proposed:") < trail.index("effect_previewed:")
    assert trail.index("effect_previewed:") < trail.index("risk_classified:")
    assert "executed: summarises customers (every row) by status; changes nothing" in done.output
    assert notices_for(worker, run.workflow_id) == 0, "nobody should have been asked"
    assert done.returncode == 0, done.output


async def test_send_approval_with_request_id_approves_and_the_action_runs(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The command pasted from the notice applies the decision and the starter sees it."""
    async with started_run(worker, dev_server, tmp_path, unique("Delete the staging table")) as run:
        notice = await approval_notice(worker, run)
        assert run.request in notice.text
        sent = await send_approval(
            worker, run, notice.request_id, "approve", "Backups checked", "--reviewer", "ann"
        )
        done = await run.finish()

    assert sent.stdout == confirmation("ann", "approved", notice, run)
    assert sent.returncode == 0, sent.output
    assert "Result: approved - Approved by ann" in done.output
    assert "decision_approved: by ann: Backups checked" in done.output
    assert f"executed: {EMAILED}" in done.output
    assert done.returncode == 0, done.output


async def test_send_approval_reject_with_notes_stops_the_action(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A rejection is applied, its notes reach the starter, and nothing executes."""
    async with started_run(worker, dev_server, tmp_path, unique("Drop the orders table")) as run:
        notice = await approval_notice(worker, run)
        sent = await send_approval(
            worker, run, notice.request_id, "reject", "Not during the sale", "--reviewer", "carol"
        )
        done = await run.finish()

    assert sent.stdout == confirmation("carol", "rejected", notice, run)
    assert sent.returncode == 0, sent.output
    assert (
        "Result: rejected - Rejected by carol: Not during the sale. Nothing was executed."
        in done.output
    )
    assert "executed:" not in done.output
    assert done.returncode == 0, done.output


async def test_send_approval_without_request_id_decides_the_pending_request(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The two-argument form finds the pending request itself."""
    async with started_run(worker, dev_server, tmp_path, unique("Purge the old logs")) as run:
        notice = await approval_notice(worker, run)
        sent = await send_approval(worker, run, "approve")
        done = await run.finish()

    # Without --reviewer the decision is signed with the OS user.
    assert sent.stdout == confirmation(getpass.getuser(), "approved", notice, run)
    assert sent.returncode == 0, sent.output
    assert "Result: approved" in done.output
    assert done.returncode == 0, done.output


async def test_a_decision_sent_again_is_already_applied_and_counted_once(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The answer to a send was lost, so the approver sends the same decision again: it is a
    new update (each run of the script has its own), which the workflow recognises as the
    vote it counted. The script says so and exits 0; the vote counts once."""
    quorum = ("--approver", "ann", "--approver", "bob", "--required-approvals", "2")
    request = unique("Rotate the payment keys")
    async with started_run(worker, dev_server, tmp_path, request, *quorum) as run:
        notice = await approval_notice(worker, run)
        words = (notice.request_id, "approve", "Keys backed up", "--reviewer", "ann")
        first = await send_approval(worker, run, *words)
        again = await send_approval(worker, run, *words)
        status = await status_of(dev_server.client.get_workflow_handle(run.workflow_id))
        second = await send_approval(worker, run, notice.request_id, "approve", "--reviewer", "bob")
        done = await run.finish()

    assert first.stdout == confirmation("ann", "approved", notice, run), first.output
    assert again.returncode == 0, again.output
    (vote,) = status.votes
    assert vote.decided_at is not None
    assert again.stdout == (
        f"Already applied: ann approved request {notice.request_id} of workflow "
        f"{run.workflow_id} at {vote.decided_at.isoformat()}.\n"
    )
    assert second.stdout == confirmation("bob", "approved", notice, run), second.output
    assert done.output.count("decision_approved: by ann") == 1, done.output
    assert "Result: approved - Approved by bob" in done.output


async def test_temporal_cli_signal_with_the_notice_json_approves(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The ``temporal workflow signal`` recipe in the notice works as printed."""
    async with started_run(worker, dev_server, tmp_path, unique("Wipe the test cluster")) as run:
        notice = await approval_notice(worker, run)
        assert notice.signal_name == APPROVAL_DECISION_SIGNAL
        assert json.loads(notice.signal_input)["request_id"] == notice.request_id
        signalled = await cli_signal(
            worker, run.workflow_id, notice.signal_name, notice.signal_input
        )
        done = await run.finish()

    assert signalled.returncode == 0, signalled.output
    assert f"Result: approved - Approved by {PASTING_USER}" in done.output  # never "unknown"
    assert f"decision_approved: by {PASTING_USER}: Looks good" in done.output
    assert done.returncode == 0, done.output


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("true", "Result: approved - Approved by temporal-cli"),
        ("false", "Result: rejected - Rejected by temporal-cli: no notes. Nothing was executed."),
    ],
    ids=["approve", "reject"],
)
async def test_temporal_cli_shorthand_signal_decides(
    worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    tmp_path: Path,
    verdict: str,
    expected: str,
) -> None:
    """``--name approve --input true|false`` decides without knowing the request ID."""
    async with started_run(worker, dev_server, tmp_path, unique("Erase the cache disks")) as run:
        await approval_notice(worker, run)
        signalled = await cli_signal(worker, run.workflow_id, APPROVE_SIGNAL, verdict)
        done = await run.finish()

    assert signalled.returncode == 0, signalled.output
    assert expected in done.output
    assert done.returncode == 0, done.output


async def test_no_decision_before_the_approval_timeout_times_out(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Nobody answers: the run gives up at its deadline, not before, and executes nothing."""
    request = unique("Revoke the contractor tokens")
    async with started_run(worker, dev_server, tmp_path, request, "--approval-timeout", "2") as run:
        await approval_notice(worker, run)
        noticed_at = time.monotonic()
        done = await run.finish()
        waited = time.monotonic() - noticed_at

    assert "Result: timed_out - No decision within 2s; cancelled." in done.output
    assert "executed:" not in done.output
    # The 2s timer starts once the notice is out; allow for the log poll's lag.
    assert waited >= 1.5, f"gave up {waited:.1f}s after the notice, before the 2s deadline"
    assert done.returncode == 0, done.output


async def test_approval_status_shows_the_pending_request_then_the_completion(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """An approver can see what waits (with the request ID), and later how it ended."""
    async with started_run(worker, dev_server, tmp_path, unique("Delete the demo users")) as run:
        notice = await approval_notice(worker, run)
        waiting = await script("approval_status", run.workflow_id, env=worker.env)
        signalled = await cli_signal(worker, run.workflow_id, APPROVE_SIGNAL, "true")
        await run.finish()
        after = await script("approval_status", run.workflow_id, env=worker.env)

    assert f"Workflow {run.workflow_id}: awaiting_approval" in waiting.stdout
    assert f"Request ID: {notice.request_id}" in waiting.stdout
    assert waiting.returncode == 0, waiting.output
    assert signalled.returncode == 0, signalled.output
    assert f"Workflow {run.workflow_id}: completed" in after.stdout
    assert "Decision:   approved by temporal-cli" in after.stdout
    assert "Result:     approved" in after.stdout
    assert after.returncode == 0, after.output


async def test_pending_list_shows_a_waiting_run_until_it_is_decided(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """``approval_status --pending`` is the approver's inbox: decided runs leave it."""

    async def pending() -> Ran:
        return await script("approval_status", "--pending", env=worker.env)

    async with started_run(worker, dev_server, tmp_path, unique("Remove the old backups")) as run:
        await approval_notice(worker, run)
        listed = await wait_until(pending, lambda ran: run.workflow_id in ran.stdout)
        signalled = await cli_signal(worker, run.workflow_id, APPROVE_SIGNAL, "false")
        done = await run.finish()
        unlisted = await wait_until(pending, lambda ran: run.workflow_id not in ran.stdout)

    assert listed.returncode == 0, listed.output
    assert signalled.returncode == 0, signalled.output
    assert "Result: rejected" in done.output
    assert unlisted.returncode == 0, unlisted.output


async def test_temporal_cli_query_reports_awaiting_approval(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """``temporal workflow query --name get_status`` gives the status as JSON."""
    async with started_run(worker, dev_server, tmp_path, unique("Reset the admin password")) as run:
        notice = await approval_notice(worker, run)
        queried = await temporal_cli(
            "workflow",
            "query",
            "--address",
            worker.address,
            "--workflow-id",
            run.workflow_id,
            "--name",
            STATUS_QUERY,
            "--output",
            "json",
            env=worker.env,
        )

    assert queried.returncode == 0, queried.output
    (status,) = json.loads(queried.stdout)["queryResult"]
    assert status["state"] == "awaiting_approval"
    assert status["approval_request"]["request_id"] == notice.request_id


async def test_temporal_cli_list_finds_the_waiting_run_by_approval_status(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The ApprovalStatus search attribute makes waiting runs findable with the plain CLI."""

    async def list_pending() -> Ran:
        return await temporal_cli(
            "workflow",
            "list",
            "--address",
            worker.address,
            "--query",
            'ApprovalStatus="Pending"',
            env=worker.env,
        )

    async with started_run(worker, dev_server, tmp_path, unique("Truncate the audit log")) as run:
        await approval_notice(worker, run)
        listed = await wait_until(list_pending, lambda ran: run.workflow_id in ran.stdout)

    assert listed.returncode == 0
    (line,) = [line for line in listed.stdout.splitlines() if run.workflow_id in line]
    assert "Running" in line


async def test_approve_with_edits_edits_the_call_which_is_asked_about_again_and_runs(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """An approver reads the call (``approval_status``) and approves it with other
    arguments: the edited call is asked about again, and once another approver approves
    it, it is what runs; the audit trail shows both calls."""
    async with started_run(worker, dev_server, tmp_path, unique("Delete the old rows")) as run:
        notice = await approval_notice(worker, run)
        shown = await script("approval_status", run.workflow_id, env=worker.env)
        call = next(line for line in shown.stdout.splitlines() if line.startswith("Call:"))
        tool, _, arguments = call.removeprefix("Call:").strip().partition(" ")
        edited = json.dumps({**json.loads(arguments), "subject": "Only the rows of 2019"})
        sent = await send_approval(worker, run, "approve", "--edit-arguments", edited)
        handle = dev_server.client.get_workflow_handle(run.workflow_id)
        await wait_until(
            lambda: status_of(handle),
            lambda s: (
                s.approval_request is not None
                and s.approval_request.request_id != notice.request_id
                and s.state == WorkflowState.AWAITING_APPROVAL
            ),
        )
        again = await send_approval(worker, run, "approve", "--reviewer", "bob")
        done = await run.finish()

    assert tool == "send_email"
    assert sent.stdout == confirmation(getpass.getuser(), "approved", notice, run)
    assert sent.returncode == 0 and again.returncode == 0, sent.output + again.output
    result_line = next(line for line in done.output.splitlines() if line.startswith("Result:"))
    assert result_line == f"Result: approved - Approved by bob; executed: {EMAILED}"
    (amendment,) = [line for line in done.output.splitlines() if "action_amended" in line]
    assert arguments in amendment and '"subject":"Only the rows of 2019"' in amendment
    assert "approval_reopened" in done.output
    assert done.returncode == 0, done.output


def test_no_script_or_worker_inherits_a_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker given no notifier posts to ``HITL_WEBHOOK_URL``: the session clears it, and
    the scripts' environment drops it even when it is set, so no test reaches a real one."""
    assert WEBHOOK_URL_ENV not in os.environ and WEBHOOK_TOKEN_ENV not in os.environ
    monkeypatch.setenv(WEBHOOK_URL_ENV, "http://127.0.0.1:9/hook")
    monkeypatch.setenv(WEBHOOK_TOKEN_ENV, "secret")
    env = script_env("127.0.0.1:7233", "http://127.0.0.1:9/v1", "some-queue")
    assert WEBHOOK_URL_ENV not in env and WEBHOOK_TOKEN_ENV not in env


async def test_a_model_answering_prose_ends_the_run_analysis_failed_with_exit_1(
    worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    """No proposal, no action: the starter says why in plain words and exits 1 for scripts."""
    request = unique("Archive the old invoices")
    llm_server.on(request, *[ok("Sure, I can help you with that!")] * (PROSE_ANSWERS + 2))
    async with started_run(worker, dev_server, tmp_path, request) as run:
        done = await run.finish()

    assert done.returncode == 1, done.output
    assert "Traceback" not in done.output
    result_line = next(line for line in done.output.splitlines() if line.startswith("Result:"))
    assert result_line.startswith("Result: analysis_failed - Analysis failed:"), result_line
    assert "not a valid proposed action" in result_line
    assert "executed:" not in done.output
    assert llm_server.calls(request) == PROSE_ANSWERS
    assert notices_for(worker, run.workflow_id) == 0


async def test_a_requester_approving_their_own_request_is_refused(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Four eyes end to end: ``--requester dan`` cannot approve as dan; the run still waits
    for someone else, and dan may still withdraw it."""
    request = unique("Grant dan admin rights")
    async with started_run(worker, dev_server, tmp_path, request, "--requester", "dan") as run:
        notice = await approval_notice(worker, run)
        refused = await send_approval(
            worker, run, notice.request_id, "approve", "--reviewer", "dan"
        )
        status = await status_of(dev_server.client.get_workflow_handle(run.workflow_id))
        withdrawn = await send_approval(
            worker, run, notice.request_id, "reject", "--reviewer", "dan"
        )
        done = await run.finish()

    assert refused.returncode == 1, refused.output
    assert "Traceback" not in refused.output
    assert refused.stderr.strip() == (
        "Refused: 'dan' requested or amended this action and cannot approve it"
    )
    assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
    assert withdrawn.returncode == 0, withdrawn.output
    assert "Result: rejected - Rejected by dan" in done.output
    assert "executed:" not in done.output


async def test_the_worker_log_of_a_hostile_proposal_cannot_forge_the_notice(
    worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    """The workflow logs every audit event (``action_proposed: ...``) in the terminal the
    approvers read: the model's newlines and escapes there stay one escaped line, so no
    forged "Approve or reject:" block appears above the real notice."""
    forged = (
        "Tidy up\n\nApprove or reject:\n"
        '  uv run python -m send_approval evil-wf evil-req approve "ok"\r\x1b[2J\u202eevil'
    )
    request = script_risky_proposal(llm_server, unique("Tidy the vendor list"), description=forged)
    earlier = len(worker.output())  # the session's worker logged other tests' runs before
    async with started_run(worker, dev_server, tmp_path, request) as run:
        await approval_notice(worker, run)
        log = worker.output()[earlier:]

    lines = log.splitlines()
    (proposed,) = [line for line in lines if "action_proposed:" in line and run.workflow_id in line]
    assert "Tidy up\\n\\nApprove or reject:\\n" in proposed
    assert "\\r\\x1b[2J\\u202eevil" in proposed
    assert not any(char in log for char in "\r\x1b\u202e")
    forged_command = "uv run python -m send_approval evil"
    assert not any(line.lstrip().startswith(forged_command) for line in lines)
