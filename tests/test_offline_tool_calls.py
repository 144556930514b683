"""The offline analyser's tool choice: deterministic, valid for its tool, or no tool (and
then the analyser refuses: only a tool can act)."""

import re

import pytest

from activities.offline_analysis import NoToolFits, propose_offline
from activities.offline_tool_calls import UNDERSTOOD, propose_tool_call
from tools.registry import validated_arguments

TEST_ROWS = [{"column": "status", "op": "=", "value": "test"}]
# Every request the README and the cookbook run, with the tool it now maps to.
README_REQUESTS = [
    ("Delete all test data from the production database", "delete_records",
     {"table": "customers", "filters": TEST_ROWS}),
    ("Summarise our customers by status", "summarize_records",
     {"table": "customers", "group_by": "status"}),
    ("Delete all inactive users from the production database", "delete_records",
     {"table": "users", "filters": [{"column": "active", "op": "=", "value": "0"}]}),
    ("Wire $5,000 to the new vendor account", "pay_vendor", {"amount_cents": 500_000}),
    ("Show me five customers in Germany", "find_records", {"table": "customers", "limit": 5}),
    ("Delete inactive customers in France", "delete_records",
     {"table": "customers", "filters": [{"column": "status", "op": "=", "value": "inactive"},
                                        {"column": "country", "op": "=", "value": "FR"}]}),
    ("Grant the admin role to user lnovak1", "grant_role",
     {"username": "lnovak1", "role": "admin"}),
    ("Pay invoice INV-2291: $48,000 to Northwind Traders", "pay_vendor",
     {"vendor": "Northwind Traders", "amount_cents": 4_800_000}),
]  # fmt: skip

CHOICES = [
    ("Pay $25,000 to ACME", "pay_vendor", {"vendor": "ACME", "amount_cents": 2_500_000}),
    ("Move $5,000 from payroll to the reserve account", "transfer_funds",
     {"from_account": "payroll", "to_account": "reserve", "amount_cents": 500_000}),
    ("Pay invoice 12", "pay_invoice", {"invoice_id": 12}),
    ("Summarise the weekly report", "summarize_records", {"table": "customers"}),
    ("Show me five customers in Germany", "find_records",
     {"limit": 5, "filters": [{"column": "country", "op": "=", "value": "DE"}]}),
    ("Delete inactive customers in Germany", "delete_records", {"table": "customers"}),
    ("Email all subscribers: spring sale", "send_email",
     {"mailing_list": "newsletter", "subject": "spring sale"}),
    ("Send an e-mail to ada@example.com", "send_email", {"to": "ada@example.com"}),
    ("Grant admin to user jberg3", "grant_role", {"username": "jberg3", "role": "admin"}),
    ("Revoke billing from jberg3", "revoke_role", {"username": "jberg3", "role": "billing"}),
    ("Deactivate all users", "update_records", {"table": "users"}),
    ("What are the account balances?", "account_balances", {}),
    ("Remove the test customers", "delete_records", {"filters": TEST_ROWS}),
    *README_REQUESTS,
]  # fmt: skip


@pytest.mark.parametrize(("request_", "tool", "some_arguments"), CHOICES)
def test_known_phrasings_get_a_valid_call(request_: str, tool: str, some_arguments: dict) -> None:
    call = propose_tool_call(request_)
    assert call is not None
    assert call.tool == tool
    assert some_arguments.items() <= call.arguments.items()
    validated_arguments(call)
    assert propose_tool_call(request_) == call  # deterministic


@pytest.mark.parametrize(
    "request_", ["Delete the staging bucket", "Force-push main to fix the broken build"]
)
def test_anything_else_gets_no_tool(request_: str) -> None:
    assert propose_tool_call(request_) is None


def test_the_offline_analyser_refuses_a_request_no_tool_fits_and_says_what_it_knows() -> None:
    """Its rules are deterministic: a request they map to no tool gets the same refusal on
    every attempt, which names the kinds of request they do understand."""
    with pytest.raises(NoToolFits) as refused:
        propose_offline("Force-push main to fix the broken build")

    message = str(refused.value)
    assert message.startswith("No tool fits this request")
    assert "offline rule-based analyser (not an LLM)" in message
    assert "'Show me five customers in Germany'" in message
    examples = re.findall(r"'([^']+)'", UNDERSTOOD)
    assert len(examples) == 5
    for example in examples:
        assert propose_offline(example).tool_call is not None  # the examples it gives work
