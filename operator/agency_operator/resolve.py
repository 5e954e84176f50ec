"""Which AgentPolicy governs an Agent, and whether the Agent (and a run of it) keeps to it.

Pure functions over parsed objects: the reconcilers fetch, these decide. A refusal carries a CamelCase
reason for programs and a sentence for people that names the field and the value at fault, because the
person reading `kubectl describe` has to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from agency_runtime.api.agent import Agent
from agency_runtime.api.common import RunBudget
from agency_runtime.api.policy import AgentPolicy, LabelSelector
from agency_runtime.api.run import AgentRun, TriggerType
from agency_runtime.contract import Budget


@dataclass(frozen=True)
class Refusal:
    """Why a run may not start (yet). `permanent` when nothing but a new AgentRun can fix it."""

    reason: str
    message: str
    permanent: bool = False


@lru_cache(maxsize=512)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", glob)))


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether `name` matches any pattern; `*` matches any run of characters (including `/`)."""
    return any(_pattern(p).fullmatch(name) for p in patterns)


def selects(selector: LabelSelector, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics: all matchLabels and all matchExpressions must hold."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for expr in selector.match_expressions:
        present = expr.key in labels
        value = labels.get(expr.key)
        ok = {
            "In": present and value in expr.values,
            "NotIn": not present or value not in expr.values,
            "Exists": present,
            "DoesNotExist": not present,
        }[expr.operator]
        if not ok:
            return False
    return True


def policy_for(agent: Agent, policies: Sequence[AgentPolicy]) -> AgentPolicy | Refusal:
    """The governing policy: the one the agent names (which must select it), else the one selecting it."""
    labels = agent.metadata.labels
    if agent.spec.policy_ref is not None:
        wanted = agent.spec.policy_ref.name
        named = next((p for p in policies if p.metadata.name == wanted), None)
        if named is None:
            return Refusal(
                "PolicyNotFound",
                f"Agent {agent.metadata.name} names AgentPolicy {wanted} in spec.policyRef, which does not "
                f"exist in namespace {agent.metadata.namespace}; create it or change spec.policyRef.",
            )
        if not selects(named.spec.agent_selector, labels):
            return Refusal(
                "PolicyDoesNotSelectAgent",
                f"AgentPolicy {wanted} is named in spec.policyRef of Agent {agent.metadata.name}, but its "
                "spec.agentSelector does not match the agent's labels; label the agent or widen the "
                "selector.",
            )
        return named
    selecting = sorted(
        (p for p in policies if selects(p.spec.agent_selector, labels)), key=lambda p: p.metadata.name
    )
    if not selecting:
        return Refusal(
            "NoPolicy",
            f"No AgentPolicy in namespace {agent.metadata.namespace} selects Agent {agent.metadata.name}: "
            "an agent without a policy does not run. Create an AgentPolicy or set spec.policyRef.",
        )
    if len(selecting) > 1:
        names = ", ".join(p.metadata.name for p in selecting)
        return Refusal(
            "AmbiguousPolicy",
            f"AgentPolicies {names} all select Agent {agent.metadata.name}; "
            "set spec.policyRef to choose one.",
        )
    return selecting[0]


def check_agent(agent: Agent, policy: AgentPolicy) -> Refusal | None:
    """Whether the agent's models and tools are ones the policy allows."""
    allowed_models = policy.spec.models.allowed
    models = [("spec.model.name", agent.spec.model.name)] + [
        (f"spec.model.fallbacks[{i}].name", f.name) for i, f in enumerate(agent.spec.model.fallbacks)
    ]
    for where, model in models:
        if not matches(model, allowed_models):
            return Refusal(
                "ModelNotAllowed",
                f"Agent {agent.metadata.name} uses model {model} ({where}), which AgentPolicy "
                f"{policy.metadata.name} does not allow "
                f"(spec.models.allowed: {', '.join(allowed_models) or 'none'}).",
            )
    tools = policy.spec.tools
    for i, tool in enumerate(agent.spec.tools):
        where = f"spec.tools[{i}] ({tool.name})"
        if matches(tool.name, tools.denied):
            return Refusal(
                "ToolNotAllowed",
                f"Agent {agent.metadata.name} declares tool {where}, "
                f"which AgentPolicy {policy.metadata.name} denies (spec.tools.denied); "
                "remove the tool from the agent or from the denied list.",
            )
        if not matches(tool.name, tools.allowed):
            return Refusal(
                "ToolNotAllowed",
                f"Agent {agent.metadata.name} declares tool {where}, "
                f"which AgentPolicy {policy.metadata.name} does not allow "
                f"(spec.tools.allowed: {', '.join(tools.allowed) or 'none'}).",
            )
    return None


def budget_of(run_budget: RunBudget | None) -> Budget:
    if run_budget is None:
        return Budget()
    return Budget(
        max_tokens=run_budget.max_tokens,
        max_cost_usd=run_budget.max_cost_usd,
        max_steps=run_budget.max_steps,
        max_wall_seconds=run_budget.max_wall_seconds,
    )


_BUDGET_FIELDS = (
    ("max_tokens", "maxTokens"),
    ("max_cost_usd", "maxCostUSD"),
    ("max_steps", "maxSteps"),
    ("max_wall_seconds", "maxWallSeconds"),
)


def is_delegated(run: AgentRun) -> bool:
    """Whether another run created this one through the delegate tool."""
    trigger = run.spec.trigger
    return trigger is not None and trigger.type == TriggerType.DELEGATION


def run_budget(run: AgentRun, policy: AgentPolicy) -> Budget | Refusal:
    """The budget the runtime enforces: the policy's per-run limits, lowered (never raised) by the run's.

    A delegated run's budget is a ceiling carved from its parent's remaining budget, not a request: it is
    clamped to the child's own policy instead of refused, so delegation never fails on the child's policy
    being stricter than the parent's."""
    policy_budget = budget_of(policy.spec.budgets.per_run)
    asked = budget_of(run.spec.budget)
    if is_delegated(run):
        return policy_budget.tighten(asked)
    for attr, wire in _BUDGET_FIELDS:
        mine, limit = getattr(asked, attr), getattr(policy_budget, attr)
        if mine is not None and limit is not None and mine > limit:
            return Refusal(
                "BudgetAbovePolicy",
                f"AgentRun {run.metadata.name} asks for spec.budget.{wire}={mine}, above the "
                f"spec.budgets.perRun.{wire}={limit} of AgentPolicy {policy.metadata.name}; a run may only "
                "lower its policy's limits. Create a new AgentRun within them.",
                permanent=True,
            )
    return policy_budget.tighten(asked)
