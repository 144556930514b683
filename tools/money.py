"""Paying an invoice and moving funds between the company's accounts.

Amounts are whole cents (integers: no float rounding). The preview shows each balance
before -> after; the fingerprint covers the balances and the invoice, so a payment approved
against one balance never runs against another.
"""

import sqlite3
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, model_validator

from models.tools import Row
from tools.base import Effect, Tool, ToolArguments, ToolRefused, as_rows, money

AccountId = Literal["operating", "payroll", "reserve"]


class PayInvoiceArgs(ToolArguments):
    invoice_id: int = Field(ge=1)
    from_account: AccountId


class TransferFundsArgs(ToolArguments):
    from_account: AccountId
    to_account: AccountId
    amount_cents: int = Field(gt=0, description="whole cents: $25,000 is 2500000")
    memo: str = Field(max_length=200)

    @model_validator(mode="after")
    def _two_accounts(self) -> "TransferFundsArgs":
        if self.from_account == self.to_account:
            raise ValueError("from_account and to_account must differ")
        return self


class PayVendorArgs(ToolArguments):
    vendor: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 .,&'-]{0,99}$")
    amount_cents: int = Field(gt=0, description="whole cents: $25,000 is 2500000")
    from_account: AccountId
    memo: str = Field(max_length=200)


class AccountBalancesArgs(ToolArguments):
    pass


def _account(db: sqlite3.Connection, account: str) -> Row:
    rows = as_rows(db.execute("SELECT * FROM accounts WHERE id = ?", (account,)))
    if not rows:
        raise ToolRefused(f"no account {account!r}")
    return rows[0]


def _invoice(db: sqlite3.Connection, invoice_id: int) -> Row:
    rows = as_rows(db.execute("SELECT * FROM invoices WHERE id = ?", (invoice_id,)))
    if not rows:
        raise ToolRefused(f"no invoice {invoice_id}")
    return rows[0]


def _balance_line(account: Row, change: int) -> str:
    before = int(account["balance_cents"] or 0)
    return f"{account['id']}: {money(before)} -> {money(before + change)}"


def _preview_pay(db: sqlite3.Connection, args: PayInvoiceArgs) -> Effect:
    invoice, account = _invoice(db, args.invoice_id), _account(db, args.from_account)
    amount = int(invoice["amount_cents"] or 0)
    problems = []
    if invoice["status"] != "open":
        problems.append(f"invoice {args.invoice_id} is {invoice['status']}, not open")
    if amount > int(account["balance_cents"] or 0):
        problems.append(f"{args.from_account} holds less than {money(amount)}")
    summary = (
        f"pays {money(amount)} to {invoice['vendor']} for invoice {args.invoice_id} "
        f"from {args.from_account}; balance {_balance_line(account, -amount).split(': ')[1]}"
    )
    return Effect(
        summary=f"cannot pay: {'; '.join(problems)}" if problems else summary,
        affected=0 if problems else 1,
        fingerprint_rows=[invoice, account],
        details=(_balance_line(account, -amount),),
        sample_rows=(invoice,),
        amount_cents=amount,
        feasible=not problems,
    )


def _apply_pay(db: sqlite3.Connection, args: PayInvoiceArgs) -> str:
    invoice = _invoice(db, args.invoice_id)
    amount = int(invoice["amount_cents"] or 0)
    db.execute(
        "UPDATE accounts SET balance_cents = balance_cents - ? WHERE id = ?",
        (amount, args.from_account),
    )
    db.execute("UPDATE invoices SET status = 'paid' WHERE id = ?", (args.invoice_id,))
    db.execute(
        "INSERT INTO payments (invoice_id, from_account, to_party, amount_cents, memo, paid_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            args.invoice_id,
            args.from_account,
            invoice["vendor"],
            amount,
            f"invoice {args.invoice_id}",
            datetime.now(UTC).isoformat(),
        ),
    )
    return f"paid {money(amount)} to {invoice['vendor']} for invoice {args.invoice_id}"


def _preview_transfer(db: sqlite3.Connection, args: TransferFundsArgs) -> Effect:
    source, target = _account(db, args.from_account), _account(db, args.to_account)
    short = args.amount_cents > int(source["balance_cents"] or 0)
    summary = (
        f"cannot move {money(args.amount_cents)}: {args.from_account} holds less"
        if short
        else f"moves {money(args.amount_cents)} from {args.from_account} to {args.to_account}"
    )
    return Effect(
        summary=summary,
        affected=0 if short else 2,
        fingerprint_rows=[source, target],
        details=(
            _balance_line(source, -args.amount_cents),
            _balance_line(target, args.amount_cents),
        ),
        amount_cents=args.amount_cents,
        feasible=not short,
    )


def _apply_transfer(db: sqlite3.Connection, args: TransferFundsArgs) -> str:
    db.execute(
        "UPDATE accounts SET balance_cents = balance_cents - ? WHERE id = ?",
        (args.amount_cents, args.from_account),
    )
    db.execute(
        "UPDATE accounts SET balance_cents = balance_cents + ? WHERE id = ?",
        (args.amount_cents, args.to_account),
    )
    db.execute(
        "INSERT INTO payments (invoice_id, from_account, to_party, amount_cents, memo, paid_at)"
        " VALUES (NULL, ?, ?, ?, ?, ?)",
        (
            args.from_account,
            args.to_account,
            args.amount_cents,
            args.memo,
            datetime.now(UTC).isoformat(),
        ),
    )
    return f"moved {money(args.amount_cents)} from {args.from_account} to {args.to_account}"


def _preview_pay_vendor(db: sqlite3.Connection, args: PayVendorArgs) -> Effect:
    account = _account(db, args.from_account)
    short = args.amount_cents > int(account["balance_cents"] or 0)
    line = _balance_line(account, -args.amount_cents)
    return Effect(
        summary=f"cannot pay {money(args.amount_cents)}: {args.from_account} holds less"
        if short
        else f"pays {money(args.amount_cents)} to {args.vendor} from {args.from_account}; "
        f"balance {line.split(': ')[1]}",
        affected=0 if short else 1,
        fingerprint_rows=[account],
        details=(line,),
        amount_cents=args.amount_cents,
        feasible=not short,
    )


def _apply_pay_vendor(db: sqlite3.Connection, args: PayVendorArgs) -> str:
    db.execute(
        "UPDATE accounts SET balance_cents = balance_cents - ? WHERE id = ?",
        (args.amount_cents, args.from_account),
    )
    db.execute(
        "INSERT INTO payments (invoice_id, from_account, to_party, amount_cents, memo, paid_at)"
        " VALUES (NULL, ?, ?, ?, ?, ?)",
        (
            args.from_account,
            args.vendor,
            args.amount_cents,
            args.memo,
            datetime.now(UTC).isoformat(),
        ),
    )
    return f"paid {money(args.amount_cents)} to {args.vendor} from {args.from_account}"


def _balances(db: sqlite3.Connection, _: AccountBalancesArgs) -> list[Row]:
    return as_rows(db.execute("SELECT * FROM accounts ORDER BY id"))


def _preview_balances(db: sqlite3.Connection, args: AccountBalancesArgs) -> Effect:
    rows = _balances(db, args)
    return Effect(
        summary=f"reads the balances of {len(rows)} accounts; changes nothing",
        affected=len(rows),
        fingerprint_rows=rows,
        details=tuple(f"{row['id']}: {money(int(row['balance_cents'] or 0))}" for row in rows),
    )


ACCOUNT_BALANCES = Tool(
    name="account_balances",
    description="Show the balance of each company account (read-only).",
    arguments=AccountBalancesArgs,
    preview=_preview_balances,
    rows=_balances,
    read_only=True,
)
PAY_INVOICE = Tool(
    name="pay_invoice",
    description="Pay an open invoice in full from one of the company's accounts.",
    arguments=PayInvoiceArgs,
    preview=_preview_pay,
    apply=_apply_pay,
)
PAY_VENDOR = Tool(
    name="pay_vendor",
    description="Pay an amount (in cents) to an outside party from one of the company's "
    "accounts, with no invoice.",
    arguments=PayVendorArgs,
    preview=_preview_pay_vendor,
    apply=_apply_pay_vendor,
)
TRANSFER_FUNDS = Tool(
    name="transfer_funds",
    description="Move an amount (in cents) between two of the company's accounts.",
    arguments=TransferFundsArgs,
    preview=_preview_transfer,
    apply=_apply_transfer,
)
