"""Two approved calls that each add a row to the same table both execute as approved.

The key SQLite gives a new row is the next free number when the call runs: any insert
since the preview moves it. The fingerprint once covered it, so of two e-mails approved
side by side (five waiting runs decided together, in tests/test_fault_tolerance.py) only the
first executed; every other one "drifted" and asked its approvers again, for an effect
that had not changed.
"""

from pathlib import Path

import pytest

from models.tools import ToolStatus
from tests.test_tools import call, change, query, run
from tools.database import ensure_database
from tools.execution import preview_call


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "operations.sqlite3"
    ensure_database(path)
    return path


def test_two_emails_previewed_together_both_execute(db_path: Path) -> None:
    first = call("send_email", to="ops@example.com", mailing_list=None, subject="a", body="A")
    second = call("send_email", to="ops@example.com", mailing_list=None, subject="b", body="B")
    previews = [preview_call(db_path, first), preview_call(db_path, second)]

    outcomes = [
        run(db_path, first, previews[0], key="key-1"),
        run(db_path, second, previews[1], key="key-2"),
    ]

    assert [outcome.status for outcome in outcomes] == [ToolStatus.EXECUTED] * 2
    assert query(db_path, "SELECT subject FROM outbox ORDER BY id") == [("a",), ("b",)]


def test_an_email_still_drifts_when_what_it_writes_changed(db_path: Path) -> None:
    """Only the assigned key is left out: the row written is still the one approved (here
    its recipients: the list grew since the preview)."""
    newsletter = call(
        "send_email", to=None, mailing_list="newsletter", subject="News", body="Hello"
    )
    preview = preview_call(db_path, newsletter)
    change(
        db_path,
        "INSERT INTO mailing_list (list_name, email, name) VALUES (?, ?, ?)",
        "newsletter",
        "late@example.com",
        "Late Subscriber",
    )

    assert run(db_path, newsletter, preview).status is ToolStatus.DRIFTED
    assert query(db_path, "SELECT COUNT(*) FROM outbox") == [(0,)]
