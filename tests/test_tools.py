"""Every tool: its effect, its preview (which changes nothing), once-only execution, and
refusal when the data drifted from the approved preview. Plain calls on a fresh operations
database per test; no Temporal involved."""

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from models.tools import EffectPreview, ExecuteToolInput, ToolCall, ToolOutcome, ToolStatus
from tools.database import ensure_database, reset_database
from tools.execution import (
    ApprovalMissing,
    IdempotencyKeyReused,
    execute_call,
    preview_call,
)
from tools.registry import TOOLS, InvalidToolCall


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "operations.sqlite3"
    ensure_database(path)
    return path


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, params).fetchall()


def change(path: Path, sql: str, *params: Any) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(sql, params)


def snapshot(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return "\n".join(db.iterdump())


def call(tool: str, **arguments: Any) -> ToolCall:
    return ToolCall(tool=tool, arguments=arguments)


def approve_and_run(path: Path, tool_call: ToolCall, key: str = "key-1") -> ToolOutcome:
    preview = preview_call(path, tool_call)
    return run(path, tool_call, preview, key)


def run(path: Path, tool_call: ToolCall, preview: EffectPreview, key: str = "key-1") -> ToolOutcome:
    request = ExecuteToolInput(
        idempotency_key=key, call=tool_call, approved_fingerprint=preview.fingerprint
    )
    return execute_call(path, request)


DE = {"column": "country", "op": "=", "value": "DE"}
INACTIVE = {"column": "status", "op": "=", "value": "inactive"}
TEST_ROWS = {"column": "status", "op": "=", "value": "test"}


def open_invoice(path: Path) -> tuple[int, str, int]:
    return query(
        path,
        "SELECT id, vendor, amount_cents FROM invoices WHERE status = 'open' ORDER BY id LIMIT 1",
    )[0]


def balance(path: Path, account: str) -> int:
    return query(path, "SELECT balance_cents FROM accounts WHERE id = ?", account)[0][0]


# Every tool that changes data, with a call on the seeded data and how to see its effect.
WRITE_CALLS = {
    "delete_records": call("delete_records", table="customers", filters=[DE, INACTIVE]),
    "update_records": call(
        "update_records",
        table="customers",
        filters=[DE],
        changes=[{"column": "status", "value": "inactive"}],
    ),
    "transfer_funds": call(
        "transfer_funds",
        from_account="operating",
        to_account="reserve",
        amount_cents=2_500_000,
        memo="top up",
    ),
    "pay_vendor": call(
        "pay_vendor",
        vendor="ACME",
        amount_cents=2_500_000,
        from_account="operating",
        memo="consulting",
    ),
    "send_email": call(
        "send_email", to=None, mailing_list="beta-testers", subject="Beta 2", body="Hello"
    ),
    # Rebuilt on the seeded data by seeded_calls (a user without admin, an open invoice).
    "grant_role": call("grant_role", username="ada1", role="admin"),
    "revoke_role": call("revoke_role", username="ada1", role="viewer"),
    "pay_invoice": call("pay_invoice", invoice_id=1, from_account="operating"),
    "run_sql": call("run_sql", statement="UPDATE users SET active = 0 WHERE id <= 3"),
}


def seeded_calls(path: Path) -> dict[str, ToolCall]:
    no_admin = (
        "SELECT username FROM users WHERE username NOT IN "
        "(SELECT username FROM user_roles WHERE role = 'admin') ORDER BY id LIMIT 1"
    )
    user = query(path, no_admin)[0][0]
    calls = dict(WRITE_CALLS)
    calls["grant_role"] = call("grant_role", username=user, role="admin")
    calls["revoke_role"] = call("revoke_role", username=user, role="viewer")
    calls["pay_invoice"] = call(
        "pay_invoice", invoice_id=open_invoice(path)[0], from_account="operating"
    )
    return calls


def test_the_database_is_seeded_deterministically(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    ensure_database(first)
    ensure_database(second)
    ensure_database(second)  # idempotent: seeded once
    assert snapshot(first) == snapshot(second)
    assert query(first, "SELECT COUNT(*) FROM customers") == [(2_020,)]
    domains = {email.split("@")[1] for (email,) in query(first, "SELECT email FROM customers")}
    assert domains == {"example.com"}  # reserved for examples: nobody's real address
    assert marked_test_customers(first) == [
        (n, f"Test Customer {n - 2_000}") for n in range(2_001, 2_021)
    ]


def marked_test_customers(path: Path) -> list[tuple[int, str]]:
    return query(path, "SELECT id, name FROM customers WHERE status = 'test' ORDER BY id")


def test_a_database_seeded_by_the_first_version_gets_the_test_customers_once(
    tmp_path: Path,
) -> None:
    """Version 1 had no test customers; the upgrade adds them after any rows added since,
    and never again once they are deleted ("Delete all test data" must stay done)."""
    path = tmp_path / "v1.sqlite3"
    ensure_database(path)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM customers WHERE status = 'test'")
        db.execute(
            "INSERT INTO customers VALUES"
            " (2001, 'Late', 'l@example.com', 'DE', 'active', '2026-11-30')"
        )
        db.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")

    ensure_database(path)
    assert [id for id, _ in marked_test_customers(path)] == list(range(2_002, 2_022))
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM customers WHERE status = 'test'")
    ensure_database(path)
    assert marked_test_customers(path) == []
    assert query(path, "SELECT value FROM meta") == [("2",)]


def test_every_tool_that_changes_data_is_tested_here() -> None:
    changing = {name for name, tool in TOOLS.items() if not tool.read_only}
    assert changing == set(WRITE_CALLS)


@pytest.mark.parametrize("tool", sorted(WRITE_CALLS))
def test_a_preview_changes_nothing(db_path: Path, tool: str) -> None:
    before = snapshot(db_path)
    preview = preview_call(db_path, seeded_calls(db_path)[tool])
    assert snapshot(db_path) == before
    assert preview.feasible
    assert preview.tool == tool
    assert len(preview.fingerprint) == 64


@pytest.mark.parametrize("tool", sorted(WRITE_CALLS))
def test_a_repeated_key_acts_once_and_returns_the_first_outcome(db_path: Path, tool: str) -> None:
    tool_call = seeded_calls(db_path)[tool]
    preview = preview_call(db_path, tool_call)
    first = run(db_path, tool_call, preview)
    after_first = snapshot(db_path)
    second = run(db_path, tool_call, preview)
    assert first.status is ToolStatus.EXECUTED
    assert second == first
    assert snapshot(db_path) == after_first
    assert query(db_path, "SELECT COUNT(*) FROM tool_executions") == [(1,)]


@pytest.mark.parametrize("tool", sorted(WRITE_CALLS))
def test_drift_since_the_preview_refuses_without_acting(db_path: Path, tool: str) -> None:
    """Every tool's fingerprint covers what it acts on: change that, and it does not act."""
    tool_call = seeded_calls(db_path)[tool]
    preview = preview_call(db_path, tool_call)
    drift = {
        "delete_records": "INSERT INTO customers (name, email, country, status, created_at)"
        " VALUES ('New One', 'new@example.com', 'DE', 'inactive', '2026-01-01')",
        "update_records": "UPDATE customers SET name = 'Renamed' WHERE id = "
        "(SELECT MIN(id) FROM customers WHERE country = 'DE')",
        "transfer_funds": "UPDATE accounts SET balance_cents = balance_cents - 1"
        " WHERE id = 'operating'",
        "pay_vendor": "UPDATE accounts SET balance_cents = balance_cents + 1"
        " WHERE id = 'operating'",
        "send_email": "INSERT INTO mailing_list (list_name, email, name)"
        " VALUES ('beta-testers', 'late@example.org', 'Late Joiner')",
        "grant_role": f"INSERT INTO user_roles VALUES "
        f"('{tool_call.arguments.get('username')}', 'billing')",
        "revoke_role": f"INSERT INTO user_roles VALUES "
        f"('{tool_call.arguments.get('username')}', 'support')",
        "pay_invoice": "UPDATE accounts SET balance_cents = balance_cents - 1"
        " WHERE id = 'operating'",
        "run_sql": "UPDATE customers SET country = 'FR' WHERE id = 1",
    }[tool]
    change(db_path, drift)
    before = snapshot(db_path)

    outcome = run(db_path, tool_call, preview)

    assert outcome.status is ToolStatus.DRIFTED
    assert outcome.preview.fingerprint != preview.fingerprint  # the fresh preview, to re-ask
    assert "not executed" in outcome.summary
    assert snapshot(db_path) == before
    # A drift is not an execution: once re-approved on the fresh preview, the same key acts.
    assert run(db_path, tool_call, outcome.preview).status is ToolStatus.EXECUTED


def test_delete_records(db_path: Path) -> None:
    matching = query(
        db_path, "SELECT COUNT(*) FROM customers WHERE country = 'DE' AND status = 'inactive'"
    )[0][0]
    tool_call = call("delete_records", table="customers", filters=[DE, INACTIVE])
    preview = preview_call(db_path, tool_call)
    assert preview.affected == matching > 5
    assert preview.summary == (
        f"deletes {matching} of 2,020 rows in customers where country = 'DE' and "
        "status = 'inactive'; first 5 shown"
    )
    assert len(preview.sample_rows) == 5
    assert all(row["country"] == "DE" for row in preview.sample_rows)

    outcome = run(db_path, tool_call, preview)

    assert outcome.summary.startswith(f"deleted {matching} rows from customers")
    assert query(db_path, "SELECT COUNT(*) FROM customers") == [(2_020 - matching,)]


def test_a_delete_with_nothing_left_to_delete_says_so_and_how_to_reseed(db_path: Path) -> None:
    """The test rows deleted by an earlier run: the person asked sees why nothing matches
    and the command that brings the sample data back."""
    tool_call = call("delete_records", table="customers", filters=[TEST_ROWS])
    run(db_path, tool_call, preview_call(db_path, tool_call))

    again = preview_call(db_path, tool_call)

    assert again.affected == 0
    assert again.summary == (
        "deletes 0 of 2,000 rows in customers where status = 'test'; no row matches "
        "(changed already? `uv run python -m tools --reset` reseeds the sample data)"
    )


def test_update_records(db_path: Path) -> None:
    tool_call = seeded_calls(db_path)["update_records"]
    german = query(db_path, "SELECT COUNT(*) FROM customers WHERE country = 'DE'")[0][0]
    preview = preview_call(db_path, tool_call)
    assert preview.affected == german
    assert preview.details == ["status: 'active', 'inactive' -> 'inactive'"]
    approve = run(db_path, tool_call, preview)
    assert approve.status is ToolStatus.EXECUTED
    assert query(db_path, "SELECT DISTINCT status FROM customers WHERE country = 'DE'") == [
        ("inactive",)
    ]


def test_pay_invoice(db_path: Path) -> None:
    invoice_id, vendor, amount = open_invoice(db_path)
    before = balance(db_path, "operating")
    tool_call = call("pay_invoice", invoice_id=invoice_id, from_account="operating")
    preview = preview_call(db_path, tool_call)
    assert preview.amount_cents == amount
    assert f"to {vendor} for invoice {invoice_id}" in preview.summary
    assert preview.details == [
        f"operating: ${before / 100:,.2f} -> ${(before - amount) / 100:,.2f}"
    ]

    run(db_path, tool_call, preview)

    assert balance(db_path, "operating") == before - amount
    assert query(db_path, "SELECT status FROM invoices WHERE id = ?", invoice_id) == [("paid",)]
    assert query(
        db_path, "SELECT to_party, amount_cents FROM payments WHERE invoice_id = ?", invoice_id
    ) == [(vendor, amount)]
    # Paid now: a new request to pay it again is previewed as impossible, and never acts.
    again = preview_call(db_path, tool_call)
    assert not again.feasible
    assert again.summary == f"cannot pay: invoice {invoice_id} is paid, not open"
    assert run(db_path, tool_call, again, key="key-2").status is ToolStatus.INFEASIBLE
    assert balance(db_path, "operating") == before - amount


def test_transfer_funds(db_path: Path) -> None:
    tool_call = seeded_calls(db_path)["transfer_funds"]
    preview = preview_call(db_path, tool_call)
    assert preview.summary == "moves $25,000.00 from operating to reserve"
    assert preview.details == [
        "operating: $4,000,000.00 -> $3,975,000.00",
        "reserve: $250,000.00 -> $275,000.00",
    ]
    assert preview.amount_cents == 2_500_000
    run(db_path, tool_call, preview)
    assert (balance(db_path, "operating"), balance(db_path, "reserve")) == (
        397_500_000,
        27_500_000,
    )


def test_pay_vendor(db_path: Path) -> None:
    tool_call = seeded_calls(db_path)["pay_vendor"]
    preview = preview_call(db_path, tool_call)
    assert preview.summary == (
        "pays $25,000.00 to ACME from operating; balance $4,000,000.00 -> $3,975,000.00"
    )
    run(db_path, tool_call, preview)
    assert balance(db_path, "operating") == 397_500_000
    assert query(db_path, "SELECT to_party, memo FROM payments") == [("ACME", "consulting")]


def test_transfer_beyond_the_balance_is_infeasible(db_path: Path) -> None:
    tool_call = call(
        "transfer_funds", from_account="reserve", to_account="payroll",
        amount_cents=10**12, memo="",
    )  # fmt: skip
    preview = preview_call(db_path, tool_call)
    assert not preview.feasible
    assert run(db_path, tool_call, preview).status is ToolStatus.INFEASIBLE
    assert balance(db_path, "reserve") == 25_000_000


def test_send_email_to_a_list_is_recorded_in_the_outbox_never_sent(db_path: Path) -> None:
    tool_call = call(
        "send_email", to=None, mailing_list="newsletter", subject="Spring sale", body="Hi"
    )
    preview = preview_call(db_path, tool_call)
    assert preview.summary == "e-mails 1,500 subscribers of newsletter: subject 'Spring sale'"
    assert preview.affected == 1_500
    run(db_path, tool_call, preview)
    ((recipients, count, subject),) = query(
        db_path, "SELECT recipients, recipient_count, subject FROM outbox"
    )
    assert (count, subject) == (1_500, "Spring sale")
    assert len(json.loads(recipients)) == 1_500


def test_send_email_to_one_person(db_path: Path) -> None:
    tool_call = call("send_email", to="ada@example.com", mailing_list=None, subject="Hi", body="x")
    preview = preview_call(db_path, tool_call)
    assert (preview.affected, preview.summary) == (1, "e-mails ada@example.com: subject 'Hi'")
    run(db_path, tool_call, preview)
    assert query(db_path, "SELECT recipients FROM outbox") == [('["ada@example.com"]',)]


def test_grant_and_revoke_a_role(db_path: Path) -> None:
    calls = seeded_calls(db_path)
    user = calls["grant_role"].arguments["username"]
    roles = lambda: [r for (r,) in query(  # noqa: E731
        db_path, "SELECT role FROM user_roles WHERE username = ? ORDER BY role", user)]  # fmt: skip
    before = roles()
    preview = preview_call(db_path, calls["grant_role"])
    assert preview.summary == f"grants role admin to {user}"
    assert preview.details == [
        f"roles: {', '.join(before)} -> {', '.join(sorted({*before, 'admin'}))}"
    ]
    run(db_path, calls["grant_role"], preview)
    assert "admin" in roles()
    approve_and_run(db_path, calls["revoke_role"], key="key-2")
    assert "viewer" not in roles()


def test_a_role_for_no_such_user_is_previewed_as_impossible(db_path: Path) -> None:
    tool_call = call("grant_role", username="nobody", role="admin")
    preview = preview_call(db_path, tool_call)
    assert (preview.feasible, preview.summary) == (False, "cannot: no user 'nobody'")
    assert run(db_path, tool_call, preview).status is ToolStatus.INFEASIBLE


def test_run_sql_changes_rows_and_previews_the_count(db_path: Path) -> None:
    tool_call = seeded_calls(db_path)["run_sql"]
    preview = preview_call(db_path, tool_call)
    assert preview.summary == "runs ad-hoc SQL: changes 3 rows"
    run(db_path, tool_call, preview)
    assert query(db_path, "SELECT active FROM users WHERE id <= 3") == [(0,), (0,), (0,)]


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH DATABASE '/tmp/elsewhere.sqlite3' AS elsewhere",
        "DROP TABLE customers",
        "PRAGMA writable_schema = 1",
        "DELETE FROM tool_executions",
        "SELECT * FROM sqlite_master",
        "SELECT load_extension('evil')",
        "DELETE FROM customers; DELETE FROM users",
        "COMMIT",
    ],
)
def test_run_sql_cannot_leave_the_operations_tables(
    db_path: Path, tmp_path: Path, statement: str
) -> None:
    before = snapshot(db_path)
    preview = preview_call(db_path, call("run_sql", statement=statement))
    assert not preview.feasible
    assert preview.summary.startswith("cannot: the statement was refused")
    outcome = run(db_path, call("run_sql", statement=statement), preview)
    assert outcome.status is ToolStatus.INFEASIBLE
    assert snapshot(db_path) == before
    assert not Path("/tmp/elsewhere.sqlite3").exists()


def test_read_only_tools_answer_and_change_nothing(db_path: Path) -> None:
    before = snapshot(db_path)
    found = execute_call(
        db_path,
        ExecuteToolInput(
            idempotency_key="k",
            call=call("find_records", table="customers", filters=[DE], limit=3),
        ),
    )
    summary = execute_call(
        db_path,
        ExecuteToolInput(
            idempotency_key="k2",
            call=call("summarize_records", table="invoices", filters=[], group_by="status"),
        ),
    )
    balances = execute_call(
        db_path, ExecuteToolInput(idempotency_key="k3", call=call("account_balances"))
    )
    assert [row["country"] for row in found.rows] == ["DE", "DE", "DE"]
    assert found.summary.startswith("reads 198 of 2,020 rows in customers where country = 'DE'")
    assert sum(row["count"] for row in summary.rows) == 400  # type: ignore[misc]
    assert [row["id"] for row in balances.rows] == ["operating", "payroll", "reserve"]
    assert snapshot(db_path) == before


@pytest.mark.parametrize(
    ("tool_call", "problem"),
    [
        (call("drop_everything"), "unknown tool 'drop_everything'"),
        (call("delete_records", table="sqlite_master", filters=[DE]), "table: Input should be"),
        (
            call("delete_records", table="customers",
                 filters=[{"column": "country; DROP TABLE users", "op": "=", "value": "x"}]),
            "customers has no column 'country; DROP TABLE users'",
        ),
        (call("delete_records", table="customers", filters=[]), "filters: List should have"),
        (call("delete_records", table="accounts", filters=[DE]), "table: Input should be"),
        (
            call("update_records", table="customers", filters=[DE],
                 changes=[{"column": "id", "value": "1"}]),
            "column 'id' of customers cannot be updated",
        ),
        (call("pay_invoice", invoice_id="3", from_account="operating"), "invoice_id"),
        (call("pay_invoice", invoice_id=3, from_account="operating", extra=1), "extra"),
        (call("send_email", to="a@example.com", mailing_list="newsletter", subject="s",
              body="b"), "exactly one of to and mailing_list"),
        (call("grant_role", username="x", role="god"), "role: Input should be"),
    ],
)  # fmt: skip
def test_hostile_or_invalid_arguments_are_refused_before_any_sql(
    db_path: Path, tool_call: ToolCall, problem: str
) -> None:
    before = snapshot(db_path)
    with pytest.raises(InvalidToolCall) as refused:
        preview_call(db_path, tool_call)
    assert problem in str(refused.value)
    with pytest.raises(InvalidToolCall):
        execute_call(
            db_path, ExecuteToolInput(idempotency_key="k", call=tool_call, approved_fingerprint="x")
        )
    assert snapshot(db_path) == before


def test_a_tool_that_changes_data_needs_an_approved_preview(db_path: Path) -> None:
    with pytest.raises(ApprovalMissing):
        execute_call(db_path, ExecuteToolInput(idempotency_key="k", call=WRITE_CALLS["send_email"]))


def test_a_key_reused_for_another_call_is_refused(db_path: Path) -> None:
    approve_and_run(db_path, WRITE_CALLS["send_email"])
    other = call("send_email", to="x@example.com", mailing_list=None, subject="s", body="b")
    with pytest.raises(IdempotencyKeyReused):
        approve_and_run(db_path, other)
    assert query(db_path, "SELECT COUNT(*) FROM outbox") == [(1,)]


def test_a_failure_after_acting_rolls_the_effect_back(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Effect and key commit together: a failure while recording undoes the effect, and the
    retry acts exactly once."""
    import tools.execution as execution

    tool_call = WRITE_CALLS["transfer_funds"]
    preview = preview_call(db_path, tool_call)
    record = execution._record

    def crash(*args: Any) -> None:
        raise RuntimeError("worker died between the effect and its record")

    monkeypatch.setattr(execution, "_record", crash)
    with pytest.raises(RuntimeError):
        run(db_path, tool_call, preview)
    assert balance(db_path, "reserve") == 25_000_000

    monkeypatch.setattr(execution, "_record", record)
    run(db_path, tool_call, preview)
    run(db_path, tool_call, preview)
    assert balance(db_path, "reserve") == 27_500_000


def test_reset_seeds_again(db_path: Path) -> None:
    approve_and_run(db_path, WRITE_CALLS["transfer_funds"])
    reset_database(db_path)
    assert balance(db_path, "reserve") == 25_000_000
    assert query(db_path, "SELECT COUNT(*) FROM tool_executions") == [(0,)]


# A process that takes the write lock, applies the effect, reaches the point of recording
# its key, says so, and hangs there until it is killed.
_DIES_MID_EXECUTE = """
import sys, time
from pathlib import Path
import tools.execution as execution
from models.tools import ExecuteToolInput

def hang(*args):
    Path(sys.argv[2]).write_text("acted")
    time.sleep(600)

execution._record = hang
execution.execute_call(Path(sys.argv[1]), ExecuteToolInput.model_validate_json(sys.argv[3]))
"""


async def test_a_process_killed_mid_execute_leaves_nothing_and_the_retry_acts_once(
    db_path: Path, tmp_path: Path
) -> None:
    """What an exception cannot show: the OS kills the process inside the transaction,
    after the effect and before the commit. SQLite rolls the journal back; the retry (here,
    another process's connection) acts once."""
    import subprocess
    import sys

    from tests.helpers import wait_until

    tool_call = WRITE_CALLS["transfer_funds"]
    preview = preview_call(db_path, tool_call)
    request = ExecuteToolInput(
        idempotency_key="killed", call=tool_call, approved_fingerprint=preview.fingerprint
    )
    marker = tmp_path / "acted"
    dying = subprocess.Popen(
        [sys.executable, "-c", _DIES_MID_EXECUTE, str(db_path), str(marker),
         request.model_dump_json()],
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    try:

        async def acted() -> bool:
            return marker.exists() or dying.poll() is not None

        await wait_until(acted, bool, timeout=60)
        assert dying.poll() is None, "the executing process ended before the kill"
    finally:
        dying.kill()
        dying.wait()

    first = execute_call(db_path, request)
    again = execute_call(db_path, request)

    assert first.status is ToolStatus.EXECUTED
    assert again == first
    assert balance(db_path, "reserve") == 27_500_000
    assert query(db_path, "SELECT COUNT(*) FROM payments WHERE memo = 'top up'") == [(1,)]


@pytest.mark.parametrize(
    "tool_call",
    [
        call("pay_vendor", vendor="ACME\x1b[2J", amount_cents=1, from_account="operating",
             memo=""),
        call("grant_role", username="ada\x1b]8;;evil\x07", role="admin"),
        call("send_email", to="a\x1b[31m@example.com", mailing_list=None, subject="s", body="b"),
        call("send_email", to=None, mailing_list="news\nletter", subject="s", body="b"),
    ],
)  # fmt: skip
def test_names_shown_unquoted_admit_no_control_characters(
    db_path: Path, tool_call: ToolCall
) -> None:
    with pytest.raises(InvalidToolCall):
        preview_call(db_path, tool_call)


def test_free_text_reaches_the_preview_quoted(db_path: Path) -> None:
    tool_call = call("send_email", to="a@example.com", mailing_list=None,
                     subject="Hi\x1b[2J", body="b")  # fmt: skip
    assert "\x1b" not in preview_call(db_path, tool_call).summary
    sql = call("run_sql", statement="SELECT 1 -- \x1b[2J")
    assert "\x1b" not in str(preview_call(db_path, sql).details)


@pytest.mark.parametrize(
    ("tool_call", "problem"),
    [
        ({"tool": "shell", "arguments": {"command": "rm -rf /"}}, "unknown tool 'shell'"),
        ({"tool": "pay_invoice", "arguments": {"invoice_id": "7"}}, "invalid arguments"),
        ({"tool": "account_balances"}, None),
    ],
)
def test_the_parser_refuses_a_call_outside_any_tool(tool_call: dict, problem: str | None) -> None:
    """Inside the analysis activity: an unknown tool or invalid arguments are malformed
    output (retried, then analysis_failed), never a proposal."""
    from activities.proposal_parser import MalformedProposalError, parse_proposed_action

    answer = json.dumps({"action_type": "x", "description": "d", "reasoning": "r",
                         "risky_action": False, "tool_call": tool_call})  # fmt: skip
    if problem is None:
        assert parse_proposed_action(answer).tool_call == ToolCall(tool="account_balances")
        return
    with pytest.raises(MalformedProposalError, match=problem):
        parse_proposed_action(answer)
