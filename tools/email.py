"""Sending an e-mail to one person or to a mailing list. Nothing is ever sent: the message
is recorded in the ``outbox`` table, where a real system would hand it to a mail service."""

import json
import sqlite3
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field, model_validator

from tools.base import Effect, Tool, ToolArguments, ToolRefused

EMAIL_PATTERN = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
# What the schema asks a model for: a plain address with bounded parts, in the pattern form
# tools/schema.py keeps (no unbounded repeat, no backslash), so a grammar-constrained model
# cannot write a non-address. The argument model still takes any address EMAIL_PATTERN does.
SCHEMA_EMAIL_PATTERN = "^[a-z0-9._-]{1,40}@[a-z0-9-]{1,40}[.][a-z]{2,10}$"


class SendEmailArgs(ToolArguments):
    to: (
        Annotated[
            str, Field(pattern=EMAIL_PATTERN, json_schema_extra={"pattern": SCHEMA_EMAIL_PATTERN})
        ]
        | None
    ) = Field(description="one address, or null")
    mailing_list: str | None = Field(
        pattern=r"^[a-z0-9_-]{1,40}$", description="a list name (e.g. newsletter), or null"
    )
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5_000)
    exactly_one_of = ("to", "mailing_list")

    @model_validator(mode="after")
    def _one_audience(self) -> "SendEmailArgs":
        if (self.to is None) == (self.mailing_list is None):
            raise ValueError("give exactly one of to and mailing_list")
        return self


def _recipients(db: sqlite3.Connection, args: SendEmailArgs) -> list[str]:
    if args.to is not None:
        return [args.to]
    rows = db.execute(
        "SELECT email FROM mailing_list WHERE list_name = ? ORDER BY id", (args.mailing_list,)
    ).fetchall()
    if not rows:
        raise ToolRefused(f"no mailing list {args.mailing_list!r}, or it is empty")
    return [email for (email,) in rows]


def _preview(db: sqlite3.Connection, args: SendEmailArgs) -> Effect:
    recipients = _recipients(db, args)
    audience = (
        f"{len(recipients):,} subscribers of {args.mailing_list}"
        if args.mailing_list is not None
        else recipients[0]
    )
    return Effect(
        summary=f"e-mails {audience}: subject {args.subject!r}",
        affected=len(recipients),
        fingerprint_rows=recipients,
        details=(f"first recipients: {', '.join(recipients[:5])}",),
    )


def _apply(db: sqlite3.Connection, args: SendEmailArgs) -> str:
    recipients = _recipients(db, args)
    db.execute(
        "INSERT INTO outbox (recipients, recipient_count, subject, body, queued_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            json.dumps(recipients),
            len(recipients),
            args.subject,
            args.body,
            datetime.now(UTC).isoformat(),
        ),
    )
    return f"queued 1 e-mail to {len(recipients):,} recipients in the outbox (never sent)"


SEND_EMAIL = Tool(
    name="send_email",
    description="E-mail one address (`to`) or every subscriber of a mailing list; the "
    "message is recorded in the outbox, never sent.",
    arguments=SendEmailArgs,
    preview=_preview,
    apply=_apply,
)
