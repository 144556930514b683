"""Which tool the offline analyser proposes for a request: a small table of patterns.

Deterministic on purpose (tests, benchmarks, a first look with no model). ``RULES`` pairs
what a request asks for (its verb) with the function that works out the call's target; the
first pattern that matches decides. A request whose intent is found but whose target is
not ("Delete all users", "Deactivate someone") gets no call, like a request no pattern
knows: the offline analyser then refuses, since a guessed target would be a wrong call.
"""

import re
from collections.abc import Callable
from typing import Any

from models.tools import ToolCall
from policy.risk_policy import largest_amount
from tools.database import TABLES
from tools.records import MAX_LOOKUP_ROWS
from tools.seed_data import VENDORS

ACCOUNTS = ("operating", "payroll", "reserve")
COUNTRIES = {
    "germany": "DE", "german": "DE", "france": "FR", "french": "FR", "japan": "JP",
    "spain": "ES", "italy": "IT", "brazil": "BR", "nigeria": "NG", "netherlands": "NL",
    "uk": "GB", "britain": "GB", "usa": "US",
}  # fmt: skip
ROLES = ("viewer", "support", "billing", "admin")
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "twenty": 20}  # fmt: skip
DEFAULT_LOOKUP_ROWS = 5
# What the rules below understand, for the message that refuses any other request.
UNDERSTOOD = (
    "look-ups and counts of customers, invoices, users or subscribers ('Show me five "
    "customers in Germany', 'How many invoices are open'); account balances; deleting "
    "inactive customers, inactive users or test data; deactivating a user; marking an "
    "invoice paid; paying an invoice, a vendor or moving money ('Pay $25,000 to ACME'); "
    "e-mails ('E-mail ops@example.com: subject'); granting or revoking a role ('Grant the "
    "admin role to user lnovak1')"
)
_TABLES = {"customer": "customers", "invoice": "invoices", "user": "users",
           "subscriber": "mailing_list", "newsletter": "mailing_list"}  # fmt: skip
_ROWS = r"(customers?|invoices?|users?|subscribers?|rows?|records?)\b"  # "five customers"
# "user lnovak1": the seeded usernames end in a number, and are named as a user's.
_USERNAME = r"\buser(?:name)?\s+([a-z][a-z0-9]*\d)\b"

Rule = Callable[[str, str], "ToolCall | None"]


def propose_tool_call(user_request: str) -> ToolCall | None:
    """The tool call for the request, or None when no rule knows it (or its target)."""
    text = user_request.lower()
    for intent, rule in RULES:
        if re.search(intent, text):
            return rule(user_request, text)
    return None


def _call(tool: str, **arguments: Any) -> ToolCall:
    return ToolCall(tool=tool, arguments=arguments)


def _is(column: str, value: str) -> dict[str, str]:
    return {"column": column, "op": "=", "value": value}


def _pay_invoice(_: str, text: str) -> ToolCall | None:
    match = re.search(r"\binvoice\s+(?:#|no\.?\s*)?(\d+)", text)
    assert match is not None  # the intent pattern found it
    return _call("pay_invoice", invoice_id=int(match[1]), from_account=_source(text))


def _mark_invoice(_: str, text: str) -> ToolCall | None:
    match = re.search(r"\binvoice\s+(\d+)\s+as\s+(paid|open)\b", text)
    assert match is not None
    return _call("update_records", table="invoices", filters=[_is("id", match[1])],
                 changes=[{"column": "status", "value": match[2]}])  # fmt: skip


def _move_money(request: str, text: str) -> ToolCall | None:
    amount = largest_amount(request)
    if not amount:
        return None
    cents = round(amount * 100)
    target = re.search(r"\bto\s+(?:the\s+)?(operating|payroll|reserve)\b", text)
    if target is not None:  # to one of the company's own accounts
        destination = target[1]
        return _call("transfer_funds", from_account=_source(text, avoid=destination),
                     to_account=destination, amount_cents=cents, memo=request[:200])  # fmt: skip
    return _call("pay_vendor", vendor=_vendor(request), amount_cents=cents,
                 from_account=_source(text), memo=request[:200])  # fmt: skip


def _vendor(request: str) -> str:
    """A vendor the data knows, else the words after "to"; "unknown vendor" if neither."""
    known = next((v for v in VENDORS if re.search(rf"\b{re.escape(v)}\b", request, re.I)), None)
    target = re.search(r"\bto\s+(?:the\s+)?([a-z][\w&.-]*(?:\s+[a-z][\w&.-]*)?)", request, re.I)
    return known or (target[1].strip() if target is not None else "unknown vendor")


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
    return _call("grant_role", username=user[1], role=role)


def _email(request: str, text: str) -> ToolCall | None:
    address = re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", request)
    subject = (request.split(":", 1)[1] if ":" in request else request).strip()[:200]
    if address is not None:
        return _call("send_email", to=address[0], mailing_list=None, subject=subject,
                     body=request[:5_000])  # fmt: skip
    listed = _mailing_list(text)
    if listed is None and not re.search(r"\bsubscribers\b", text):
        return None  # to nobody named: no list to guess
    return _call("send_email", to=None, mailing_list=listed or "newsletter", subject=subject,
                 body=request[:5_000])  # fmt: skip


def _mailing_list(text: str) -> str | None:
    if re.search(r"\bbeta\b", text):
        return "beta-testers"
    return "newsletter" if re.search(r"\b(newsletter|mailing list)\b", text) else None


def _table(text: str) -> str | None:
    return next((table for word, table in _TABLES.items() if re.search(rf"\b{word}s?\b", text)),
                None)  # fmt: skip


def _filters(table: str, request: str, text: str) -> list[dict[str, str]]:
    """The rows the request names in ``table``: by status, country, vendor, user or list."""
    filters = []
    if table == "customers":
        if status := re.search(r"\b(inactive|active|test)\b", text):
            filters.append(_is("status", status[1]))
        if country := _country(request, text):
            filters.append(_is("country", country))
    if table == "invoices":
        if status := re.search(r"\b(open|paid|unpaid)\b", text):
            filters.append(_is("status", "open" if status[1] == "unpaid" else status[1]))
        if vendor := next((v for v in VENDORS if v.lower() in text), None):
            filters.append(_is("vendor", vendor))
    if table == "users":
        if user := re.search(_USERNAME, text):
            filters.append(_is("username", user[1]))
        elif status := re.search(r"\b(inactive|active)\b", text):
            filters.append(_is("active", "0" if status[1] == "inactive" else "1"))
    if table == "mailing_list" and (listed := _mailing_list(text)):
        filters.append(_is("list_name", listed))
    return filters


def _country(request: str, text: str) -> str | None:
    named = next((code for word, code in COUNTRIES.items() if re.search(rf"\b{word}\b", text)),
                 None)  # fmt: skip
    codes = set(COUNTRIES.values())
    # A country code, as the data writes it ("whose country is DE"): capitals only.
    code = next((c for c in re.findall(r"\b([A-Z]{2})\b", request) if c in codes), None)
    return named or code


def _delete(request: str, text: str) -> ToolCall | None:
    if re.search(r"\btest (data|records?|rows?|customers?|entries)\b", text):
        # Test data is the customers seeded with status 'test' (tools/seed_data.py).
        return _call("delete_records", table="customers", filters=[_is("status", "test")])
    table = _table(text)
    if table is None:
        return None
    filters = _filters(table, request, text)
    # Only named rows: "Delete all users" names none, and gets no call, not a guess.
    return _call("delete_records", table=table, filters=filters) if filters else None


def _deactivate(_: str, text: str) -> ToolCall | None:
    if _table(text) != "users":
        return None
    if user := re.search(_USERNAME, text):
        target = [_is("username", user[1])]
    elif re.search(r"\b(all|every)\b", text):
        target = [_is("active", "1")]
    else:
        return None
    return _call("update_records", table="users", filters=target,
                 changes=[{"column": "active", "value": "0"}])  # fmt: skip


def _balances(_: str, text: str) -> ToolCall | None:
    return _call("account_balances")


def _summarize(request: str, text: str) -> ToolCall | None:
    # No table named: the customers, by status (the sample's main table); the preview says so.
    table = _table(text) or "customers"
    grouped = re.search(r"\b(?:by|each|per)\s+(\w+)", text)
    group_by = "status" if "status" in TABLES[table].columns else None
    if grouped is not None and grouped[1] in TABLES[table].columns:
        group_by = grouped[1]
    return _call("summarize_records", table=table, filters=_filters(table, request, text),
                 group_by=group_by)  # fmt: skip


def _find(request: str, text: str) -> ToolCall | None:
    table = _table(text)
    if table is None:
        return None
    count = re.search(rf"\b(\d{{1,2}}|{'|'.join(NUMBERS)})\s+(?:\w+\s+)?{_ROWS}", text)
    limit = DEFAULT_LOOKUP_ROWS
    if count is not None:
        limit = int(count[1]) if count[1].isdigit() else NUMBERS[count[1]]
    return _call("find_records", table=table, filters=_filters(table, request, text),
                 limit=max(1, min(limit, MAX_LOOKUP_ROWS)))  # fmt: skip


# What a request asks for, by its words, and the rule that finds its target. The first
# pattern that matches decides, so the specific ones come first: "pay invoice 15" before
# any payment, a send verb before a look-up that mentions e-mail addresses.
RULES: tuple[tuple[str, Rule], ...] = (
    (r"\bpay\b.*\binvoice\s+(?:#|no\.?\s*)?\d+", _pay_invoice),
    (r"\bmark\s+invoice\s+\d+\s+as\s+(paid|open)\b", _mark_invoice),
    (r"\b(grant|give|make|revoke|remove|take away)\b.*\b(viewer|support|billing|admin)\b", _role),
    (r"^\W*(please\s+)?(send|write|e-?mail)\b.*(@|e-?mail|newsletter|mailing list|subscriber)",
     _email),
    (r"\b(pay|wire|transfer|move|send)\b", _move_money),
    (r"\b(deactivate|disable|suspend)\b", _deactivate),
    (r"\b(delete|remove|purge|wipe)\b", _delete),
    (r"\bbalances?\b", _balances),
    (r"\b(how many|count|summari[sz]e)\b", _summarize),
    (r"\b(show|list|find|look up|get)\b", _find),
)  # fmt: skip
