"""Money moves only through the money tools: ad-hoc SQL may read the money, role and outbox
tables but not write them, and calls only functions on an allow-list."""

from pathlib import Path

import pytest

from models.tools import ToolStatus
from tests.test_tools import balance, call, run, snapshot
from tools.database import ensure_database
from tools.execution import preview_call

MONEY = "money moves only through the money tools"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "operations.sqlite3"
    ensure_database(path)
    return path


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        # The reproduction: $3,000,000 moved on one approval, with no stages.
        (
            "UPDATE accounts SET balance_cents = CASE id"
            " WHEN 'operating' THEN balance_cents - 300000000"
            " WHEN 'payroll' THEN balance_cents + 300000000 ELSE balance_cents END",
            f"run_sql cannot change accounts: {MONEY}",
        ),
        (
            "INSERT INTO payments (invoice_id, from_account, to_party, amount_cents, memo,"
            " paid_at) VALUES (NULL, 'operating', 'Mallory', 100, '', '2026-01-01')",
            f"run_sql cannot change payments: {MONEY}",
        ),
        ("UPDATE invoices SET amount_cents = 1", f"run_sql cannot change invoices: {MONEY}"),
        ("DELETE FROM payments", f"run_sql cannot change payments: {MONEY}"),
        (
            "INSERT INTO user_roles SELECT username, 'admin' FROM users",
            "run_sql cannot change user_roles: roles change only through grant_role",
        ),
        (
            "INSERT INTO outbox (recipients, recipient_count, subject, body, queued_at)"
            " SELECT email, 1, 's', 'b', '2026-01-01' FROM customers",
            "run_sql cannot change outbox: e-mail is queued only through send_email",
        ),
        ("SELECT hex(fts3_tokenizer('simple'))", "fts3_tokenizer() is not on the allow-list"),
        ("SELECT printf('%.*c', 900000000, 'x')", "printf() is not on the allow-list"),
        ("SELECT sqlite_version()", "sqlite_version() is not on the allow-list"),
    ],
)
def test_run_sql_cannot_write_what_other_tools_guard_nor_call_unlisted_functions(
    db_path: Path, statement: str, reason: str
) -> None:
    before = snapshot(db_path)
    tool_call = call("run_sql", statement=statement)
    preview = preview_call(db_path, tool_call)
    assert not preview.feasible
    assert preview.summary.startswith(f"cannot: the statement was refused: {reason}")
    assert run(db_path, tool_call, preview).status is ToolStatus.INFEASIBLE
    assert snapshot(db_path) == before
    assert balance(db_path, "operating") == 400_000_000


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT id, balance_cents FROM accounts ORDER BY id",
        "SELECT u.username, group_concat(r.role) FROM users u JOIN user_roles r"
        " ON r.username = u.username GROUP BY u.username",
        "SELECT COUNT(*) FROM outbox",
        "SELECT vendor, SUM(amount_cents), round(avg(amount_cents)) FROM invoices GROUP BY vendor",
        "SELECT json_object('n', name) ->> '$.n', upper(email) FROM customers WHERE name LIKE 'A%'",
        "UPDATE customers SET status = 'inactive' WHERE id IN"
        " (SELECT id FROM customers WHERE country = 'DE' ORDER BY id LIMIT 3)",
    ],
)
def test_run_sql_may_read_them_and_change_the_other_tables(db_path: Path, statement: str) -> None:
    preview = preview_call(db_path, call("run_sql", statement=statement))
    assert preview.feasible, preview.summary
