"""Which tool the offline analyser proposes for a request: a few regular expressions.

Deterministic on purpose (tests, benchmarks, a first look with no model). It knows a
handful of phrasings (``UNDERSTOOD``); anything else gets no tool call, which the offline
analyser refuses: only a tool can act.
"""

import re
from typing import Any

from tools.models import ToolCall
from workflows.risk_policy import largest_amount

ACCOUNTS = ("operating", "payroll", "reserve")
COUNTRIES = {
    "germany": "DE", "german": "DE", "france": "FR", "french": "FR", "japan": "JP",
    "spain": "ES", "italy": "IT", "brazil": "BR", "nigeria": "NG", "netherlands": "NL",
    "uk": "GB", "britain": "GB", "us": "US", "usa": "US",
}  # fmt: skip
ROLES = ("viewer", "support", "billing", "admin")
# What the rules below understand, for the message that refuses any other request.
UNDERSTOOD = (
    "look-ups and counts of customers, invoices, users or subscribers ('Show me five "
    "customers in Germany', 'How many invoices are open'); account balances; deleting "
    "inactive customers, inactive users or test data; deactivating users; paying an invoice, "
    "a vendor or moving money ('Pay $25,000 to ACME'); e-mails ('E-mail ops@example.com: "
    "subject'); granting or revoking a role ('Grant the admin role to user lnovak1')"
)
_TABLES = {"customer": "customers", "invoice": "invoices", "user": "users",
           "subscriber": "mailing_list"}  # fmt: skip


def propose_tool_call(user_request: str) -> ToolCall | None:
    """The tool call for the request, or None when no rule knows it."""
    text = user_request.lower()
    rules = (_pay_invoice, _move_money, _role, _email, _test_data, _delete, _deactivate, _read)
    for rule in rules:
        if (found := rule(user_request, text)) is not None:
            return found
    return None


def _call(tool: str, **arguments: Any) -> ToolCall:
    return ToolCall(tool=tool, arguments=arguments)


def _pay_invoice(_: str, text: str) -> ToolCall | None:
    if match := re.search(r"\bpay\b.*\binvoice\s+(?:#|no\.?\s*)?(\d+)", text):
        return _call("pay_invoice", invoice_id=int(match[1]), from_account=_source(text))
    return None


def _move_money(request: str, text: str) -> ToolCall | None:
    amount = largest_amount(request)
    if not amount or not re.search(r"\b(pay|wire|transfer|move|send)\b", text):
        return None
    cents = round(amount * 100)
    target = re.search(r"\bto\s+(?:the\s+)?([a-z][\w&.-]*(?:\s+[a-z][\w&.-]*)?)", request, re.I)
    if target is not None and target[1].split()[0].lower() in ACCOUNTS:
        destination = target[1].split()[0].lower()
        source = _source(text, avoid=destination)
        return _call("transfer_funds", from_account=source, to_account=destination,
                     amount_cents=cents, memo=request[:200])  # fmt: skip
    vendor = target[1].strip() if target is not None else "unknown vendor"
    return _call("pay_vendor", vendor=vendor, amount_cents=cents, from_account=_source(text),
                 memo=request[:200])  # fmt: skip


def _source(text: str, avoid: str = "") -> str:
    match = re.search(r"\bfrom\s+(?:the\s+)?(operating|payroll|reserve)\b", text)
    if match:
        return match[1]
    return next(account for account in ACCOUNTS if account != avoid)


def _role(_: str, text: str) -> ToolCall | None:
    role = next((r for r in ROLES if re.search(rf"\b{r}\b", text)), None)
    user = re.search(r"\b(?:to|from|user)\s+([a-z][a-z0-9]*\d+)\b", text)
    if role is None or user is None:
        return None
    if re.search(r"\b(revoke|remove|take away)\b", text):
        return _call("revoke_role", username=user[1], role=role)
    if re.search(r"\b(grant|give|make)\b", text):
        return _call("grant_role", username=user[1], role=role)
    return None


def _email(request: str, text: str) -> ToolCall | None:
    if not re.search(r"\be-?mail|newsletter|mailing list|subscribers\b", text):
        return None
    address = re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", request)
    subject = (request.split(":", 1)[1] if ":" in request else request).strip()[:200]
    if address is not None:
        return _call("send_email", to=address[0], mailing_list=None, subject=subject,
                     body=request[:5_000])  # fmt: skip
    listed = "beta-testers" if "beta" in text else "newsletter"
    return _call("send_email", to=None, mailing_list=listed, subject=subject, body=request[:5_000])


def _filters(text: str) -> list[dict[str, str]]:
    filters = []
    if "inactive" in text:
        filters.append({"column": "status", "op": "=", "value": "inactive"})
    for word, code in COUNTRIES.items():
        if re.search(rf"\b{word}\b", text):
            filters.append({"column": "country", "op": "=", "value": code})
            break
    return filters


def _table(text: str) -> str | None:
    return next((table for word, table in _TABLES.items() if re.search(rf"\b{word}s?\b", text)),
                None)  # fmt: skip


def _test_data(_: str, text: str) -> ToolCall | None:
    """Test data is the customers seeded with status 'test' (tools/seed_data.py)."""
    if not re.search(r"\b(delete|remove|purge|wipe)\b", text) or not re.search(
        r"\btest (data|records?|rows?|customers?|entries)\b", text
    ):
        return None
    return _call("delete_records", table="customers",
                 filters=[{"column": "status", "op": "=", "value": "test"}])  # fmt: skip


def _delete(_: str, text: str) -> ToolCall | None:
    table = _table(text)
    if table is None or not re.search(r"\b(delete|remove|purge)\b", text):
        return None
    filters = _filters(text) if table == "customers" else []
    if table == "users":
        filters = [{"column": "active", "op": "=", "value": "0"}]
    if table == "invoices":
        filters = [{"column": "status", "op": "=", "value": "paid"}]
    if table == "mailing_list":
        filters = [{"column": "list_name", "op": "=", "value": "newsletter"}]
    return _call("delete_records", table=table, filters=filters) if filters else None


def _deactivate(_: str, text: str) -> ToolCall | None:
    if not re.search(r"\b(deactivate|disable|suspend)\w*", text) or _table(text) != "users":
        return None
    return _call("update_records", table="users",
                 filters=[{"column": "active", "op": "=", "value": "1"}],
                 changes=[{"column": "active", "value": "0"}])  # fmt: skip


def _read(_: str, text: str) -> ToolCall | None:
    if re.search(r"\bbalances?\b", text):
        return _call("account_balances")
    if not re.search(r"\b(show|list|find|look up|how many|count|summari[sz]e)\b", text):
        return None
    table = _table(text) or "customers"
    if re.search(r"\b(how many|count|summari[sz]e)\b", text):
        return _call("summarize_records", table=table, filters=_filters(text), group_by="status"
                     if table in ("customers", "invoices") else None)  # fmt: skip
    limit = int(m[1]) if (m := re.search(r"\b(\d{1,2})\b", text)) else 5
    words = {"five": 5, "ten": 10, "three": 3}
    limit = next((n for w, n in words.items() if re.search(rf"\b{w}\b", text)), limit)
    return _call("find_records", table=table, filters=_filters(text), limit=max(1, min(limit, 50)))
