"""A fixed set of requests and the tool call each must get, for scoring a model's proposals.

Each case names the tool that fits and its target: the rows it must act on (a table and the
filters that pick them, compared by the rows they select on the seeded operations
database, so ``status = 'test'`` and ``name like 'Test Customer%'`` are the same target),
and the other arguments that decide what happens (an invoice, an account, an amount, a
user and role, a mailing list). Free text the model writes (a memo, a subject, a body) is
not scored. Requests say what a person would say, naming values as the database holds them
(``DE``, ``operating``), since the model sees the tools, not the data.

The seeded data (``tools/seed_data.py``) is the same on every machine, so the expected rows
are too: e.g. 20 test customers, 7 inactive users, invoice 15 open.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rows:
    """The rows a call must select: ``table`` where every ``(column, op, value)`` holds."""

    table: str
    filters: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Case:
    request: str
    tool: str
    rows: Rows | None = None
    # Arguments that must be equal; strings compare without case. ``changes`` is compared
    # as {column: value}, whatever the order the model listed them in.
    arguments: dict[str, Any] = field(default_factory=dict)


CASES: tuple[Case, ...] = (
    Case(
        "Delete all test data from the production database",
        "delete_records",
        Rows("customers", (("status", "=", "test"),)),
    ),
    Case(
        "Delete all inactive users from the production database",
        "delete_records",
        Rows("users", (("active", "=", "0"),)),
    ),
    Case(
        "Delete the customers whose status is inactive",
        "delete_records",
        Rows("customers", (("status", "=", "inactive"),)),
    ),
    Case(
        "List the customers whose country is DE",
        "find_records",
        Rows("customers", (("country", "=", "DE"),)),
    ),
    Case(
        "Show the open invoices from ACME",
        "find_records",
        Rows("invoices", (("vendor", "=", "ACME"), ("status", "=", "open"))),
    ),
    Case(
        "How many open invoices does each vendor have?",
        "summarize_records",
        Rows("invoices", (("status", "=", "open"),)),
        {"group_by": "vendor"},
    ),
    Case(
        "Mark invoice 10 as paid",
        "update_records",
        Rows("invoices", (("id", "=", "10"),)),
        {"changes": {"status": "paid"}},
    ),
    Case(
        "Pay invoice 15 from the operating account",
        "pay_invoice",
        arguments={"invoice_id": 15, "from_account": "operating"},
    ),
    Case(
        "Transfer 5000 dollars from the operating account to the payroll account",
        "transfer_funds",
        arguments={"from_account": "operating", "to_account": "payroll", "amount_cents": 500000},
    ),
    Case(
        "Pay the vendor Globex 250 dollars from the operating account for office supplies",
        "pay_vendor",
        arguments={"vendor": "Globex", "amount_cents": 25000, "from_account": "operating"},
    ),
    Case(
        "Send an e-mail to the newsletter mailing list announcing the new pricing",
        "send_email",
        arguments={"mailing_list": "newsletter", "to": None},
    ),
    Case(
        "Give the user npetrov7 the admin role",
        "grant_role",
        arguments={"username": "npetrov7", "role": "admin"},
    ),
    Case(
        "Revoke the billing role from the user eabara6",
        "revoke_role",
        arguments={"username": "eabara6", "role": "billing"},
    ),
    Case("Show the balance of each company account", "account_balances"),
)
