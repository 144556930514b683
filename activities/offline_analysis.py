"""A deterministic, rule-based stand-in for the LLM. It is not an LLM and says so.

It lets the whole flow run with no model at all (tests, benchmarks, a first look), and
flags as risky exactly what the risk policy would. It proposes a tool call for the few
phrasings ``offline_tool_calls`` knows ("Pay $25,000 to ACME", "Show me five customers in
Germany"), and none otherwise.
"""

import re

from activities.offline_tool_calls import propose_tool_call
from models.limits import MAX_ACTION_TYPE_CHARS, MAX_DESCRIPTION_CHARS, cut
from models.models import ProposedAction
from workflows.risk_policy import matching_rules

OFFLINE_LABEL = "offline rule-based analyser (not an LLM)"


def propose_offline(user_request: str) -> ProposedAction:
    """Propose to do literally what was asked, risky when any policy rule matches."""
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
