"""A deterministic, rule-based stand-in for the LLM. It is not an LLM and says so.

It lets the whole flow run with no model at all (tests, benchmarks, a first look), and
flags as risky exactly what the risk policy would. It proposes a tool call for the few
phrasings ``offline_tool_calls`` knows ("Pay $25,000 to ACME", "Show me five customers in
Germany", "Delete all test data"). For any other request, or one whose target its rules
cannot tell, no tool fits, and only a tool can act, so it refuses with ``NoToolFits``: its
rules are deterministic, so asking again could never give another answer.
"""

import re

from activities.offline_tool_calls import UNDERSTOOD, propose_tool_call
from models.limits import MAX_ACTION_TYPE_CHARS, MAX_DESCRIPTION_CHARS, cut
from models.models import ProposedAction
from policy.risk_policy import matching_rules

OFFLINE_LABEL = "offline rule-based analyser (not an LLM)"
NO_TOOL_FITS = (
    f"The {OFFLINE_LABEL} cannot map this request to a tool and its target, so nothing "
    f"acts on it. It understands: {UNDERSTOOD}. Rephrase the request, or use a real model."
)


class NoToolFits(ValueError):
    """None of the offline rules maps the request to a tool."""


def propose_offline(user_request: str) -> ProposedAction:
    """Propose the tool call the rules find for the request; ``NoToolFits`` if none."""
    action = offline_proposal(user_request)
    if action.tool_call is None:
        raise NoToolFits(NO_TOOL_FITS)
    return action


def offline_proposal(user_request: str) -> ProposedAction:
    """Propose to do literally what was asked, risky when any policy rule matches, with the
    rules' tool call, or none (the proposal a model that finds no tool would write)."""
    words = re.findall(r"[a-z]+", user_request.lower())
    reasons = matching_rules(user_request)
    return ProposedAction(
        action_type="_".join(words[:3])[:MAX_ACTION_TYPE_CHARS] or "noop",
        # A long request is cut here: the risk policy still reads all of it.
        description=cut(f"Carry out the request: {user_request.strip()}", MAX_DESCRIPTION_CHARS),
        reasoning=f"{OFFLINE_LABEL}: "
        + ("; ".join(reasons) if reasons else "no risk rule matched"),
        risky_action=bool(reasons),
        tool_call=propose_tool_call(user_request),
    )
