"""The local-model benchmark's fixed requests and its scoring: every expected call is one
the tools accept, a call is on target by the rows it selects however its filters are
written, and a wrong table, row set, account or amount is off target."""

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.proposal_cases import CASES, Case
from benchmarks.proposal_score import score, seeded_database
from models.tools import ToolCall
from tools.registry import TOOLS

MIN_CASES = 10


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    with seeded_database() as connection:
        yield connection


def _case(tool: str) -> Case:
    return next(case for case in CASES if case.tool == tool)


def _filters(*triples: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"column": c, "op": o, "value": v} for c, o, v in triples]


def test_at_least_ten_distinct_requests_over_most_tools() -> None:
    assert len({case.request for case in CASES}) == len(CASES) >= MIN_CASES
    assert {case.tool for case in CASES} <= set(TOOLS)
    assert len({case.tool for case in CASES}) >= MIN_CASES


def test_every_expected_target_selects_rows(db: sqlite3.Connection) -> None:
    """An expected filter that selected nothing would score a do-nothing call as right."""
    for case in CASES:
        if case.rows is None:
            continue
        call = ToolCall(
            tool="find_records",
            arguments={
                "table": case.rows.table,
                "filters": _filters(*case.rows.filters),
                "limit": 1,
            },
        )
        found = score(Case(case.request, "find_records", case.rows), call, db)
        assert found.right_target, (case.request, found.why)
        empty = ToolCall(
            tool="find_records",
            arguments={
                "table": case.rows.table,
                "filters": _filters(("id", "=", "-1")) if case.rows.table != "user_roles" else [],
                "limit": 1,
            },
        )
        assert not score(Case(case.request, "find_records", case.rows), empty, db).right_target


def test_the_same_rows_by_other_filters_are_on_target(db: sqlite3.Connection) -> None:
    case = _case("delete_records")  # the test customers: status 'test'
    call = ToolCall(
        tool="delete_records",
        arguments={"table": "customers", "filters": _filters(("name", "like", "Test Customer%"))},
    )
    assert score(case, call, db).right_target


def test_wrong_table_rows_or_tool_are_off_target(db: sqlite3.Connection) -> None:
    case = _case("delete_records")
    users = ToolCall(
        tool="delete_records",
        arguments={"table": "users", "filters": _filters(("username", "like", "test%"))},
    )
    assert score(case, users, db).right_tool
    assert not score(case, users, db).right_target
    nothing = ToolCall(
        tool="delete_records",
        arguments={"table": "customers", "filters": _filters(("id", "like", "test_data"))},
    )
    result = score(case, nothing, db)
    assert (result.right_tool, result.right_target) == (True, False)
    assert "selects 0 rows" in result.why
    other_tool = ToolCall(tool="account_balances", arguments={})
    assert not score(case, other_tool, db).right_tool
    assert not score(case, None, db).right_tool


def test_money_arguments_must_match(db: sqlite3.Connection) -> None:
    case = _case("transfer_funds")
    right = {"from_account": "operating", "to_account": "payroll", "amount_cents": 500000}
    call = ToolCall(tool="transfer_funds", arguments={**right, "memo": "anything"})
    assert score(case, call, db).right_target
    swapped = {**right, "from_account": "payroll", "to_account": "operating"}
    assert not score(
        case, ToolCall(tool="transfer_funds", arguments={**swapped, "memo": "x"}), db
    ).right_target
    dollars = {**right, "amount_cents": 5000}
    assert not score(
        case, ToolCall(tool="transfer_funds", arguments={**dollars, "memo": "x"}), db
    ).right_target


def test_update_changes_compare_as_columns_and_values(db: sqlite3.Connection) -> None:
    case = _case("update_records")
    call = ToolCall(
        tool="update_records",
        arguments={
            "table": "invoices",
            "filters": _filters(("id", "=", "10")),
            "changes": [{"column": "status", "value": "Paid"}],
        },
    )
    assert score(case, call, db).right_target
    call.arguments["changes"] = [{"column": "due_date", "value": "2026-01-01"}]
    assert not score(case, call, db).right_target
