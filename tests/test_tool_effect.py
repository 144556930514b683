"""The approved effect is the executed effect: a call whose effect depends on the time or
on chance is refused before anyone is asked, and the fingerprint covers the change itself,
so an execution that would change other rows than the preview commits nothing."""

import json
import re
from pathlib import Path

import pytest

import tools.adhoc_sql as adhoc_sql
from activities.proposal_parser import MalformedProposalError, parse_proposed_action
from models.tools import ToolStatus
from tests.test_tools import call, query, run, snapshot
from tools.database import ensure_database
from tools.execution import preview_call
from tools.registry import InvalidToolCall, validated_arguments

# The reproductions: previewed as one effect, executed as another.
CLOCK = "UPDATE customers SET status = 'inactive' WHERE created_at < strftime('%Y-%m-%d', 'now')"
CHANCE = "UPDATE customers SET status = 'inactive' WHERE abs(random()) % 2 = 0"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "operations.sqlite3"
    ensure_database(path)
    return path


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (CLOCK, "reads the clock"),
        ("UPDATE customers SET status = 'x' WHERE created_at < date()", "reads the clock"),
        ("DELETE FROM mailing_list WHERE name < CURRENT_TIMESTAMP", "reads the clock"),
        ("SELECT julianday('NOW')", "reads the clock"),
        (CHANCE, "random() is random"),
        ("UPDATE users SET email = hex(randomblob(8)) WHERE id = 1", "randomblob() is random"),
        ("SELECT changes()", "changes() depends on the statements before it"),
        ("SELECT last_insert_rowid()", "last_insert_rowid() depends on the connection"),
    ],
)
def test_time_or_chance_is_refused_at_analysis_with_the_reason(statement: str, reason: str) -> None:
    with pytest.raises(InvalidToolCall, match=re.escape(reason)):
        validated_arguments(call("run_sql", statement=statement))
    tool_call = {"tool": "run_sql", "arguments": {"statement": statement}}
    answer = json.dumps({"action_type": "x", "description": "d", "reasoning": "r",
                         "risky_action": True, "tool_call": tool_call})  # fmt: skip
    with pytest.raises(MalformedProposalError, match=re.escape(reason)):
        parse_proposed_action(answer)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE customers SET status = 'x' WHERE created_at < date('n' || 'ow')",
        "UPDATE customers SET status = 'x' WHERE created_at < strftime('%Y', upper('n') || 'ow')",
    ],
)
def test_a_clock_read_built_at_run_time_is_refused_at_preview(
    db_path: Path, statement: str
) -> None:
    before = snapshot(db_path)
    preview = preview_call(db_path, call("run_sql", statement=statement))
    assert not preview.feasible
    assert "reads the clock" in preview.summary
    assert run(db_path, call("run_sql", statement=statement), preview).status is (
        ToolStatus.INFEASIBLE
    )
    assert snapshot(db_path) == before


def test_date_arithmetic_on_given_dates_runs_as_previewed(db_path: Path) -> None:
    statement = (
        "UPDATE customers SET status = 'review' WHERE created_at < date('2025-06-01', '+1 month')"
        " AND strftime('%m', created_at) = '03'"
    )
    expected = query(
        db_path,
        "SELECT COUNT(*) FROM customers WHERE created_at < '2025-07-01'"
        " AND substr(created_at, 6, 2) = '03'",
    )[0][0]
    tool_call = call("run_sql", statement=statement)
    preview = preview_call(db_path, tool_call)
    assert preview.summary == f"runs ad-hoc SQL: changes {expected:,} rows"
    assert run(db_path, tool_call, preview).status is ToolStatus.EXECUTED
    assert query(db_path, "SELECT COUNT(*) FROM customers WHERE status = 'review'") == [(expected,)]


def test_an_execution_whose_change_differs_from_the_preview_commits_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a source of chance get past the refusals (here they are switched off), the
    data before is the same at execution, but the rows changed are not: the fingerprint
    covers those, so execution reports drift with the effect it found, and acts on nothing.
    Before: the preview named one half of the users and execution changed another."""
    monkeypatch.setattr(adhoc_sql, "time_or_randomness", lambda statement: None)
    monkeypatch.setattr(adhoc_sql, "function_refusal", lambda name: None)
    tool_call = call("run_sql", statement="UPDATE users SET active = 1 - active"
                     " WHERE abs(random()) % 2 = 0")  # fmt: skip
    preview = preview_call(db_path, tool_call)
    assert preview.feasible and preview.affected > 0
    before = snapshot(db_path)

    outcome = run(db_path, tool_call, preview)

    assert outcome.status is ToolStatus.DRIFTED
    assert outcome.preview.fingerprint != preview.fingerprint
    assert snapshot(db_path) == before
    assert query(db_path, "SELECT COUNT(*) FROM tool_executions") == [(0,)]


def test_every_tool_that_changes_data_executes_the_change_it_previewed(db_path: Path) -> None:
    """The other side: a deterministic call's change is the same at execution (including
    the rows a tool stamps with the time of execution, which the fingerprint leaves out)."""
    from tests.test_tools import seeded_calls

    for key, tool_call in seeded_calls(db_path).items():
        preview = preview_call(db_path, tool_call)
        assert run(db_path, tool_call, preview, key=key).status is ToolStatus.EXECUTED, key
