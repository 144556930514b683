"""The tools the agent may propose, by name. Adding a tool means adding it here."""

from typing import Any

from pydantic import BaseModel, ValidationError

from models.tools import ToolCall
from models.validation import summarise
from tools.adhoc_sql import RUN_SQL
from tools.base import Tool
from tools.email import SEND_EMAIL
from tools.money import ACCOUNT_BALANCES, PAY_INVOICE, PAY_VENDOR, TRANSFER_FUNDS
from tools.records import DELETE_RECORDS, FIND_RECORDS, SUMMARIZE_RECORDS, UPDATE_RECORDS
from tools.roles import GRANT_ROLE, REVOKE_ROLE

TOOLS: dict[str, Tool[Any]] = {
    tool.name: tool
    for tool in (
        FIND_RECORDS,
        SUMMARIZE_RECORDS,
        ACCOUNT_BALANCES,
        DELETE_RECORDS,
        UPDATE_RECORDS,
        PAY_INVOICE,
        PAY_VENDOR,
        TRANSFER_FUNDS,
        SEND_EMAIL,
        GRANT_ROLE,
        REVOKE_ROLE,
        RUN_SQL,
    )
}


class InvalidToolCall(ValueError):
    """A call naming no known tool, or with arguments its tool does not take."""


def get_tool(name: str) -> Tool[Any]:
    try:
        return TOOLS[name]
    except KeyError:
        raise InvalidToolCall(f"unknown tool {name!r} (known: {', '.join(TOOLS)})") from None


def validated_arguments(call: ToolCall) -> tuple[Tool[Any], BaseModel]:
    """The call's tool and its arguments parsed by the tool's model, or InvalidToolCall."""
    tool = get_tool(call.tool)
    try:
        return tool, tool.parse(call.arguments)
    except ValidationError as err:
        raise InvalidToolCall(f"invalid arguments for {call.tool}: {summarise(err)}") from None


def is_read_only(name: str) -> bool:
    """True only for a registered tool that declares it changes nothing."""
    tool = TOOLS.get(name)
    return tool is not None and tool.read_only and not tool.always_asks
