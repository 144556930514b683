"""The deterministic risk policy that stands in front of the LLM's own judgement.

The LLM's ``risky_action`` flag can only raise the risk, never lower it: a request or an
answer that claims "this is safe" cannot talk its way past a human. The rules are data;
add a ``RiskRule`` to ``RISK_RULES`` to extend them. This module does no I/O and is
called from workflow code, so it must stay deterministic.
"""

import re
from dataclasses import dataclass

from models.models import AssessRiskInput, ProposedAction, RiskAssessment


@dataclass(frozen=True)
class RiskRule:
    """Text matching ``pattern`` (case-insensitive) means the action needs approval."""

    reason: str
    pattern: str


# Money is written with a symbol ($500, 5000 €) or an ISO code (5000 EUR, USD 250k); the
# same spellings feed the "moves money" rule and the large-amount staging below.
_SYMBOL = r"[$€£¥₹]"
_CODE = r"(?:usd|eur|gbp|jpy|chf|cad|aud|nzd|cny|inr|sek|nok|dkk|pln|btc|eth)"
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_SCALE = r"(?:k|m|bn|thousand|million|billion)"

RISK_RULES: tuple[RiskRule, ...] = (
    RiskRule(
        "destructive or irreversible operation",
        r"\b(delet|drop|truncat|destroy|wip(e|ing)|purg|eras|remov|overwrit|shut ?down|"
        r"terminat|revok|disabl|reset|kill|uninstall|mkfs)\w*"
        r"|\brm\s+\S|\bformat\w*\s+(\S+\s+){0,3}?(disk|drive|partition|volume|file ?system)s?\b",
    ),
    RiskRule("targets production", r"\b(prod|production|live (system|database|site))\b"),
    RiskRule(
        "moves money",
        r"\b(pay|pays|paid|paying|payments?|payouts?|payroll|transfer\w*|wir(e|es|ed|ing)"
        r"|refund\w*|charg(e|es|ed|ing)|purchas\w*|invoic\w*|withdraw\w*|reimburs\w*"
        rf"|invest(s|ed|ing|ments?)?)\b|{_SYMBOL}\s?\d|\b{_CODE}\s?\d"
        rf"|\d\s?{_SCALE}?\s?({_SYMBOL}|{_CODE}\b|(dollar|euro)s?\b)",
    ),
    RiskRule(
        "touches credentials or keys",
        r"\b(password|passphrase|credential|secret|api[ _-]?key|token|private key|ssh key"
        r"|certificate)s?\b",
    ),
    RiskRule(
        "accesses personal data",
        r"\b(personal data|pii|ssn|social security|medical record|customer (data|records)"
        r"|user data|home address(es)?|credit card)\b",
    ),
    RiskRule(
        "grants permissions or access",
        r"\b(grant\w*|admin\w*|sudo\w*|root access|superuser\w*|permission\w*|privilege\w*"
        r"|elevat\w*|chmod|chown)\b",
    ),
    RiskRule(
        "reaches many people",
        r"\b(all|every)\s+(of\s+)?(the\s+|our\s+|my\s+)?(\w+\s+)?(users?|customers?|clients?"
        r"|employees?|subscribers?|members?|contacts?|recipients?|people|staff)\b"
        r"|\b(everyone|everybody|entire (company|staff|user base|customer base)|mailing list"
        r"|mass (e-?mail|mail|message|text)\w*|broadcast\w*|newsletter\w*)\b",
    ),
)

LLM_FLAGGED_REASON = "the analysis marked the action as risky"
FORCED_REASON = "the request was started with approval required"
EXPLICIT_SETTINGS_REASON = "the request named who approves it (approvers or stages)"


def matching_rules(text: str, rules: tuple[RiskRule, ...] = RISK_RULES) -> list[str]:
    """The reasons of every rule the text matches, in table order."""
    return [rule.reason for rule in rules if re.search(rule.pattern, text, re.IGNORECASE)]


def _scanned_texts(user_request: str, action: ProposedAction) -> list[str]:
    """The request with the action's type and description, then each parameter value on
    its own (so words from two values never join into one match). Values only: they reach
    the execute step as they are ({"sql": "DROP TABLE users"}), while keys are names the
    LLM picked ("admin_email") and would only raise false alarms."""
    summary = " ".join((user_request, action.action_type.replace("_", " "), action.description))
    return [summary, *action.parameters.values()]


def assess_risk(
    user_request: str, action: ProposedAction, *, always_require_approval: bool = False
) -> RiskAssessment:
    """Combine the policy, the LLM's flag and the caller's choice; any one requires approval.

    The LLM's free-text ``reasoning`` is not scanned: it argues, it does not act.
    """
    matched = {
        reason for text in _scanned_texts(user_request, action) for reason in matching_rules(text)
    }
    reasons = [rule.reason for rule in RISK_RULES if rule.reason in matched]
    if action.risky_action:
        reasons.append(LLM_FLAGGED_REASON)
    if always_require_approval:
        reasons.append(FORCED_REASON)
    return RiskAssessment(requires_approval=bool(reasons), reasons=reasons)


# Large amounts of money go through staged approval, one child workflow per stage.
LARGE_AMOUNT = 10_000
LARGE_AMOUNT_STAGES = ("manager", "director", "cfo")
_AMOUNTS = (  # a currency then a number ($25,000, EUR 30k), or a number then one (5000 USD)
    re.compile(rf"(?:{_SYMBOL}|\b{_CODE})\s?(?P<number>{_NUMBER})\s*(?P<scale>{_SCALE})?\b", re.I),
    re.compile(
        rf"\b(?P<number>{_NUMBER})\s?(?P<scale>{_SCALE})?\s?(?:{_SYMBOL}|(?:{_CODE}|dollars?|euros?)\b)",
        re.I,
    ),
)
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}


def largest_amount(text: str) -> float:
    """The largest money amount written in ``text`` ($25,000, €30k, £1.5m, 5000 EUR...), or 0."""
    amounts = [
        float(match["number"].replace(",", "")) * _SCALES.get((match["scale"] or "").lower(), 1)
        for pattern in _AMOUNTS
        for match in pattern.finditer(text)
    ]
    return max(amounts, default=0.0)


def approval_stages(user_request: str, action: ProposedAction) -> list[str]:
    """The stages a request must pass, in order; empty for a single approval."""
    texts = [f"{user_request} {action.description}", *action.parameters.values()]
    largest = max(largest_amount(text) for text in texts)
    return list(LARGE_AMOUNT_STAGES) if largest >= LARGE_AMOUNT else []


def assess_request(request: AssessRiskInput) -> RiskAssessment:
    """The whole assessment of a proposed action: why it needs a human, and in which stages.

    Approvers or stages named on the request are a requirement of their own: whoever named
    them wants those people asked, so a request the rules find safe still waits for them.
    """
    risk = assess_risk(
        request.user_request, request.action, always_require_approval=request.require_approval
    )
    reasons = list(risk.reasons)
    if request.approvers or request.approval_stages:
        reasons.append(EXPLICIT_SETTINGS_REASON)
    stages = request.approval_stages or approval_stages(request.user_request, request.action)
    return RiskAssessment(requires_approval=bool(reasons), reasons=reasons, stages=stages)


def adds_requirements(before: RiskAssessment, after: RiskAssessment) -> list[str]:
    """What ``after`` requires that ``before`` did not: new risk reasons, or stages where
    there were none. An approval given under ``before`` does not cover those."""
    added = [reason for reason in after.reasons if reason not in before.reasons]
    if after.stages and not before.stages:
        added.append(f"approval in stages: {' -> '.join(after.stages)}")
    return added
