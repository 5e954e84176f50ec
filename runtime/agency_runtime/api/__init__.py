"""The agency.dev/v1alpha1 API: typed models of Agent, AgentPolicy, AgentSchedule and AgentRun.

The CRDs in `crds/` are generated from these models (`python -m agency_runtime.api.crd --out crds`), so
what the API server accepts and what these models parse are the same thing.

The operator-side checks (`validate_schedule` and the run budget checks) load on first use: they need the
CEL package, whose import alone is a good part of a second, and the runtime process never calls them.
"""

from typing import TYPE_CHECKING, Any

from agency_runtime.api.agent import Agent, AgentSpec, AgentStatus, BuiltinTool, ModelPricing, ModelSpec, Tool
from agency_runtime.api.common import (
    Condition,
    ConditionStatus,
    DailyBudget,
    LocalObjectReference,
    Risk,
    RunBudget,
    RunPhase,
    SecretKeyReference,
    Usage,
)
from agency_runtime.api.conditions import (
    READY,
    get_condition,
    is_false,
    is_true,
    remove_condition,
    set_condition,
)
from agency_runtime.api.meta import API_VERSION, GROUP, VERSION, ObjectMeta, Resource
from agency_runtime.api.policy import AgentPolicy, AgentPolicySpec, Autonomy, AutonomySetting, Rollback
from agency_runtime.api.run import AgentRun, AgentRunSpec, AgentRunStatus, Approval, Decision, PendingApproval
from agency_runtime.api.schedule import AgentSchedule, AgentScheduleSpec, ConcurrencyPolicy

if TYPE_CHECKING:
    from agency_runtime.api.checks import effective_run_budget, run_budget_errors, validate_schedule

_CHECKS = frozenset({"effective_run_budget", "run_budget_errors", "validate_schedule"})

KINDS: dict[str, type[Resource]] = {
    kind.__name__: kind for kind in (Agent, AgentPolicy, AgentSchedule, AgentRun)
}


def parse(body: dict[str, object]) -> Resource:
    """Parse any agency.dev object by its `kind`."""
    kind = KINDS.get(str(body.get("kind")))
    if kind is None:
        raise ValueError(f"not an {GROUP} kind: {body.get('kind')!r}")
    return kind.from_k8s(body)


if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would hide misspelt names

    def __getattr__(name: str) -> Any:
        if name in _CHECKS:
            from agency_runtime.api import checks

            return getattr(checks, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "READY",
    "VERSION",
    "Agent",
    "AgentPolicy",
    "AgentPolicySpec",
    "AgentRun",
    "AgentRunSpec",
    "AgentRunStatus",
    "AgentSchedule",
    "AgentScheduleSpec",
    "AgentSpec",
    "AgentStatus",
    "Approval",
    "Autonomy",
    "AutonomySetting",
    "BuiltinTool",
    "ConcurrencyPolicy",
    "Condition",
    "ConditionStatus",
    "DailyBudget",
    "Decision",
    "LocalObjectReference",
    "ModelPricing",
    "ModelSpec",
    "ObjectMeta",
    "PendingApproval",
    "Resource",
    "Risk",
    "Rollback",
    "RunBudget",
    "RunPhase",
    "SecretKeyReference",
    "Tool",
    "Usage",
    "effective_run_budget",
    "get_condition",
    "is_false",
    "is_true",
    "parse",
    "remove_condition",
    "run_budget_errors",
    "set_condition",
    "validate_schedule",
]
