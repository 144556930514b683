"""The deterministic risk policy that stands in front of the LLM's own judgement.

The LLM's ``risky_action`` flag can only raise the risk, never lower it: a request or an
answer that claims "this is safe" cannot talk its way past a human. The rules are data;
add a ``RiskRule`` to ``RISK_RULES`` to extend them. This module does no I/O and is
called from workflow code, so it must stay deterministic.
"""

import re
from dataclasses import dataclass

from models.models import ProposedAction, RiskAssessment


@dataclass(frozen=True)
class RiskRule:
    """Text matching ``pattern`` (case-insensitive) means the action needs approval."""

    reason: str
    pattern: str


RISK_RULES: tuple[RiskRule, ...] = (
    RiskRule(
        "destructive or irreversible operation",
        r"\b(delet|drop|truncat|destroy|wip(e|ing)|purg|eras|remov|overwrit|shut ?down|"
        r"terminat|revok|disabl|reset)\w*",
    ),
    RiskRule("targets production", r"\b(prod|production|live (system|database|site))\b"),
    RiskRule(
        "moves money",
        r"\b(pay(ment|out)?s?|transfer|wire|refund|charg(e|ing)|purchas\w*|invoice|withdraw\w*"
        r"|invest\w*)\b|[$€£]\s?\d",
    ),
    RiskRule(
        "touches credentials or keys",
        r"\b(password|credential|secret|api[ _-]?key|token|private key|ssh key|certificate)s?\b",
    ),
    RiskRule(
        "accesses personal data",
        r"\b(personal data|pii|ssn|social security|medical record|customer (data|records)"
        r"|user data|home address(es)?|credit card)\b",
    ),
    RiskRule(
        "grants permissions or access",
        r"\b(grant\w*|admin\w*|sudo|root access|permission\w*|privilege\w*|elevat\w*)\b",
    ),
    RiskRule(
        "reaches many people",
        r"\b(all (users|customers|employees|subscribers)|everyone|mass (e-?mail|message)"
        r"|broadcast\w*|newsletter)\b",
    ),
)

LLM_FLAGGED_REASON = "the analysis marked the action as risky"
FORCED_REASON = "the request was started with approval required"


def matching_rules(text: str, rules: tuple[RiskRule, ...] = RISK_RULES) -> list[str]:
    """The reasons of every rule the text matches, in table order."""
    return [rule.reason for rule in rules if re.search(rule.pattern, text, re.IGNORECASE)]


def assess_risk(
    user_request: str, action: ProposedAction, *, always_require_approval: bool = False
) -> RiskAssessment:
    """Combine the policy, the LLM's flag and the caller's choice; any one requires approval.

    The LLM's free-text ``reasoning`` is not scanned: it argues, it does not act.
    """
    text = " ".join((user_request, action.action_type.replace("_", " "), action.description))
    reasons = matching_rules(text)
    if action.risky_action:
        reasons.append(LLM_FLAGGED_REASON)
    if always_require_approval:
        reasons.append(FORCED_REASON)
    return RiskAssessment(requires_approval=bool(reasons), reasons=reasons)


# Large amounts of money go through staged approval, one child workflow per stage.
LARGE_AMOUNT = 10_000
LARGE_AMOUNT_STAGES = ("manager", "director", "cfo")
_AMOUNT = re.compile(r"[$€£]\s?(?P<number>\d[\d,]*(?:\.\d+)?)\s*(?P<scale>k|m|million)?\b", re.I)
_SCALES = {"k": 1_000, "m": 1_000_000, "million": 1_000_000}


def largest_amount(text: str) -> float:
    """The largest money amount written in ``text`` ($25,000, €30k, £1.5m...), or 0."""
    amounts = [
        float(match["number"].replace(",", "")) * _SCALES.get((match["scale"] or "").lower(), 1)
        for match in _AMOUNT.finditer(text)
    ]
    return max(amounts, default=0.0)


def approval_stages(user_request: str, action: ProposedAction) -> list[str]:
    """The stages a request must pass, in order; empty for a single approval."""
    text = f"{user_request} {action.description}"
    return list(LARGE_AMOUNT_STAGES) if largest_amount(text) >= LARGE_AMOUNT else []
