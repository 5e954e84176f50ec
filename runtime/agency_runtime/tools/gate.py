"""The policy gate: may this tool call be made now, only reported, held for approval, or not at all?

The decision follows the AgentPolicy: `spec.tools.denied` / `allowed` (glob patterns, `*` any run of
characters), a per-tool rule's risk and autonomy, else the autonomy of the call's risk class. Without a
policy (a local `agency run` without `--policy`) every tool acts.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum

from agency_runtime.api.common import Risk
from agency_runtime.api.policy import AgentPolicySpec, Autonomy, AutonomySetting, Rollback, ToolRule


class Decision(StrEnum):
    """What happens to a call."""

    ACT = "act"
    """Make the call."""
    NOTIFY = "notify"
    """Do not make it; record what the agent wanted, for the approvers to see."""
    PROPOSE = "propose"
    """Hold the call (and the run) until an approver decides."""
    DENY = "deny"
    """Refuse it; the model is told why."""


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    risk: Risk
    reason: str


def _matches(name: str, patterns: list[str]) -> str | None:
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern):
            return pattern
    return None


def _rule_for(name: str, policy: AgentPolicySpec) -> ToolRule | None:
    exact = [r for r in policy.tools.rules if r.name == name]
    if exact:
        return exact[0]
    for rule in policy.tools.rules:
        if fnmatch.fnmatchcase(name, rule.name):
            return rule
    return None


def effective_risk(name: str, declared: Risk, policy: AgentPolicySpec | None) -> Risk:
    """The policy's rule overrides the risk the tool (or Agent) declares."""
    if policy is None:
        return declared
    rule = _rule_for(name, policy)
    return rule.risk if rule is not None and rule.risk is not None else declared


def _setting_for(risk: Risk, policy: AgentPolicySpec) -> AutonomySetting:
    autonomy = policy.autonomy
    return {Risk.READ_ONLY: autonomy.read_only, Risk.IDEMPOTENT: autonomy.idempotent}.get(
        risk, autonomy.destructive
    )


def decide(
    name: str, declared: Risk, policy: AgentPolicySpec | None, *, can_undo: bool = False
) -> GateResult:
    """The gate's decision for one call of tool `name` whose own risk is `declared`."""
    if policy is None:
        return GateResult(Decision.ACT, declared, "no policy: local run")
    denied = _matches(name, policy.tools.denied)
    if denied is not None:
        return GateResult(
            Decision.DENY, declared, f"the policy denies tool {name!r} (spec.tools.denied matches {denied!r})"
        )
    if _matches(name, policy.tools.allowed) is None:
        allowed = ", ".join(policy.tools.allowed) or "none"
        return GateResult(
            Decision.DENY,
            declared,
            f"the policy does not allow tool {name!r} (spec.tools.allowed: {allowed})",
        )
    risk = effective_risk(name, declared, policy)
    rule = _rule_for(name, policy)
    setting = rule.autonomy if rule is not None and rule.autonomy is not None else _setting_for(risk, policy)
    source = f"tool rule {rule.name!r}" if rule is not None and rule.autonomy is not None else f"{risk} tools"
    if setting.level is Autonomy.NOTIFY:
        return GateResult(
            Decision.NOTIFY, risk, f"autonomy for {source} is notify: approvers are told, no call"
        )
    if setting.level is Autonomy.PROPOSE:
        return GateResult(
            Decision.PROPOSE, risk, f"autonomy for {source} is propose: the call needs approval"
        )
    if setting.rollback is Rollback.REQUIRED and not can_undo:
        return GateResult(
            Decision.PROPOSE,
            risk,
            f"autonomy for {source} is act with rollback Required, and this call cannot be undone: "
            "it needs approval",
        )
    return GateResult(Decision.ACT, risk, f"autonomy for {source} is act")
