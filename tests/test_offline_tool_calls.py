"""The offline analyser's tool choice: the right tool on the right rows, or no tool (and
then the analyser refuses: only a tool can act, and a guessed target would be wrong).

A call is on target when it selects exactly the expected rows of the seeded database,
scored as the proposal benchmark scores a model (``benchmarks/proposal_score.py``)."""

import re
import sqlite3
from collections.abc import Iterator

import pytest

from activities.offline_analysis import NoToolFits, propose_offline
from activities.offline_tool_calls import UNDERSTOOD, propose_tool_call
from benchmarks.proposal_cases import CASES, Case, Rows
from benchmarks.proposal_score import score, seeded_database
from tools.registry import validated_arguments

TEST_ROWS = Rows("customers", (("status", "=", "test"),))
# The requests the README, the demo and the issue reports type, and natural variants.
EXAMPLES = (
    Case("Delete all test data from the production database", "delete_records", TEST_ROWS),
    Case("Remove the test customers", "delete_records", TEST_ROWS),
    Case("Summarise our customers by status", "summarize_records",
         Rows("customers", ()), {"group_by": "status"}),
    Case("How many customers are in Japan, by status?", "summarize_records",
         Rows("customers", (("country", "=", "JP"),)), {"group_by": "status"}),
    Case("Count the inactive customers per country", "summarize_records",
         Rows("customers", (("status", "=", "inactive"),)), {"group_by": "country"}),
    Case("Pay $25,000 to ACME", "pay_vendor",
         arguments={"vendor": "ACME", "amount_cents": 2_500_000, "from_account": "operating"}),
    Case("Pay $500 to ACME for the March invoice", "pay_vendor",
         arguments={"vendor": "ACME", "amount_cents": 50_000}),
    Case("Wire $5,000 to the new vendor account", "pay_vendor",
         arguments={"amount_cents": 500_000}),
    Case("Pay invoice INV-2291: $48,000 to Northwind Traders", "pay_vendor",
         arguments={"vendor": "Northwind Traders", "amount_cents": 4_800_000}),
    Case("Move $5,000 from payroll to the reserve account", "transfer_funds",
         arguments={"from_account": "payroll", "to_account": "reserve", "amount_cents": 500_000}),
    Case("Show me five customers in Germany", "find_records",
         Rows("customers", (("country", "=", "DE"),)), {"limit": 5}),
    Case("Show me five customers in Germany, with their e-mail addresses", "find_records",
         Rows("customers", (("country", "=", "DE"),)), {"limit": 5}),
    Case("List 3 inactive customers in France", "find_records",
         Rows("customers", (("status", "=", "inactive"), ("country", "=", "FR"))), {"limit": 3}),
    Case("Show user lnovak1", "find_records", Rows("users", (("username", "=", "lnovak1"),))),
    Case("Delete inactive customers in France", "delete_records",
         Rows("customers", (("status", "=", "inactive"), ("country", "=", "FR")))),
    Case("Delete inactive customers in Brazil", "delete_records",
         Rows("customers", (("status", "=", "inactive"), ("country", "=", "BR")))),
    Case("Delete user lnovak1", "delete_records", Rows("users", (("username", "=", "lnovak1"),))),
    Case("Delete the paid invoices", "delete_records",
         Rows("invoices", (("status", "=", "paid"),))),
    Case("Deactivate user lnovak1", "update_records",
         Rows("users", (("username", "=", "lnovak1"),)), {"changes": {"active": "0"}}),
    Case("Please disable the account of user jberg3", "update_records",
         Rows("users", (("username", "=", "jberg3"),)), {"changes": {"active": "0"}}),
    Case("Deactivate all users", "update_records", Rows("users", (("active", "=", "1"),)),
         {"changes": {"active": "0"}}),
    Case("Grant the admin role to user lnovak1", "grant_role",
         arguments={"username": "lnovak1", "role": "admin"}),
    Case("Grant admin to user jberg3", "grant_role",
         arguments={"username": "jberg3", "role": "admin"}),
    Case("Revoke billing from jberg3", "revoke_role",
         arguments={"username": "jberg3", "role": "billing"}),
    Case("Pay invoice 12", "pay_invoice", arguments={"invoice_id": 12}),
    Case("E-mail ops@example.com: the nightly report", "send_email",
         arguments={"to": "ops@example.com", "mailing_list": None}),
    Case("Email all subscribers: spring sale", "send_email",
         arguments={"mailing_list": "newsletter", "subject": "spring sale"}),
    Case("Send the beta testers an e-mail about the new build", "send_email",
         arguments={"mailing_list": "beta-testers"}),
    Case("What are the account balances?", "account_balances"),
    *CASES,  # the proposal benchmark's requests: the rules get every one right
)  # fmt: skip

# Requests whose intent or target the rules cannot tell: no call, never a guess.
UNMAPPED = (
    "Delete the staging bucket",
    "Force-push main to fix the broken build",
    "Delete all users",  # which ones? not "the inactive ones" by default
    "Delete the demo users",
    "Delete stale invoices",
    "Deactivate someone",
    "Email every customer about the price change",  # no tool e-mails customers
    "Send an e-mail about the outage",  # to whom?
    "Show me the weekly sales figures",  # no such table
    "Look up the SSN of the applicant",
)


@pytest.fixture(scope="module")
def seeded() -> Iterator[sqlite3.Connection]:
    with seeded_database() as db:
        yield db


def test_the_table_holds_the_examples_people_type() -> None:
    assert len({case.request for case in EXAMPLES}) >= 20


@pytest.mark.parametrize("case", EXAMPLES, ids=lambda case: case.request)
def test_an_example_gets_the_right_tool_on_the_right_target(
    case: Case, seeded: sqlite3.Connection
) -> None:
    call = propose_tool_call(case.request)
    scored = score(case, call, seeded)
    assert scored.right_tool and scored.right_target, f"{call}: {scored.why}"
    assert call is not None
    validated_arguments(call)
    assert propose_tool_call(case.request) == call  # deterministic


@pytest.mark.parametrize("request_", UNMAPPED)
def test_a_request_without_a_clear_target_gets_no_tool(request_: str) -> None:
    assert propose_tool_call(request_) is None


def test_the_offline_analyser_refuses_a_request_no_tool_fits_and_says_what_it_knows() -> None:
    """Its rules are deterministic: a request they map to no tool gets the same refusal on
    every attempt, which names the kinds of request they do understand."""
    with pytest.raises(NoToolFits) as refused:
        propose_offline("Delete all users")

    message = str(refused.value)
    assert "offline rule-based analyser (not an LLM) cannot map this request" in message
    assert "'Show me five customers in Germany'" in message
    examples = re.findall(r"'([^']+)'", UNDERSTOOD)
    assert len(examples) == 5
    for example in examples:
        assert propose_offline(example).tool_call is not None  # the examples it gives work
