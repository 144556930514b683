"""The offline analyser's tool choice: deterministic, valid for its tool, or no tool."""

import pytest

from activities.offline_tool_calls import propose_tool_call
from tools.registry import validated_arguments

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
