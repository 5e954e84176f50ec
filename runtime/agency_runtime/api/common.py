"""Types more than one kind uses: references, budgets, usage and conditions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from agency_runtime.api.meta import (
    DNS_LABEL_PATTERN,
    DNS_LABEL_SHAPE,
    ApiModel,
    DnsLabel,
    DnsSubdomain,
    k8s,
    shape,
)

MAX_CONDITIONS = 16

#: The largest cost any budget may name, in US dollars; a bound keeps CEL cost estimates small.
MAX_COST_USD = 1_000_000.0
MAX_TOKENS = 1_000_000_000
MAX_STEPS = 10_000
MAX_WALL_SECONDS = 7 * 24 * 3600

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Z][A-Za-z0-9]*$"
)
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a secret


class LocalObjectReference(ApiModel):
    """A reference to another object in the same namespace, by name."""

    name: DnsSubdomain
    """Name of the referenced object, in the same namespace as this one."""


class AgentReference(ApiModel):
    """A reference to an Agent in the same namespace."""

    name: Annotated[
        str,
        Field(
            min_length=1, max_length=50, pattern=DNS_LABEL_PATTERN, json_schema_extra=shape(DNS_LABEL_SHAPE)
        ),
    ]
    """Name of the Agent, in the same namespace as this object."""


class RunReference(ApiModel):
    """A reference to an AgentRun in the same namespace."""

    name: DnsLabel
    """Name of the AgentRun, in the same namespace as this object."""


class SecretKeyReference(ApiModel):
    """One key of a Secret in the same namespace."""

    name: DnsSubdomain
    """Name of the Secret, in the same namespace as this object."""

    key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=SECRET_KEY_PATTERN,
            json_schema_extra=shape("must be letters, digits, '-', '_' and '.', like the keys of a Secret"),
        ),
    ]
    """The key inside the Secret's data whose value is used."""


PositiveTokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
PositiveCost = Annotated[float, Field(gt=0, le=MAX_COST_USD)]


class RunBudget(ApiModel):
    """Limits on one run. The run stops with phase BudgetExceeded when it reaches any of them.

    Unset limits are not enforced at this level (a policy's limit may still apply).
    """

    max_tokens: PositiveTokens | None = None
    """Most model tokens (input plus output) one run may use. Must be at least 1."""

    max_cost_usd: PositiveCost | None = Field(default=None, alias="maxCostUSD")
    """Most a run may spend on model calls, in US dollars (for example 0.50). Must be greater than 0."""

    max_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] | None = None
    """Most plan/act/observe steps one run may take. Must be at least 1."""

    max_wall_seconds: Annotated[int, Field(ge=1, le=MAX_WALL_SECONDS)] | None = None
    """Most wall-clock seconds a run may take from start to finish. Must be at least 1."""


class PolicyRunBudget(RunBudget):
    """Limits on every run an Agent under this policy makes.

    Steps and wall time default to 50 steps and 900 seconds so that no run is unbounded by accident.
    """

    max_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] | None = 50
    """Most plan/act/observe steps one run may take. Must be at least 1. Defaults to 50."""

    max_wall_seconds: Annotated[int, Field(ge=1, le=MAX_WALL_SECONDS)] | None = 900
    """Most wall-clock seconds a run may take from start to finish. Must be at least 1. Defaults to 900."""

    compact_at_tokens: Annotated[int, Field(ge=256, le=MAX_TOKENS)] | None = None
    """Summarize older steps once a model request would be this many tokens or more, to keep long runs
    small and cheap. Unset means at three quarters of the model's context window (when litellm knows it)."""


class DailyBudget(ApiModel):
    """Limits on everything one Agent does in a day (UTC). New runs are refused once a limit is reached."""

    max_tokens: PositiveTokens | None = None
    """Most model tokens (input plus output) one Agent may use per day. Must be at least 1."""

    max_cost_usd: PositiveCost | None = Field(default=None, alias="maxCostUSD")
    """Most one Agent may spend on model calls per day, in US dollars. Must be greater than 0."""

    max_runs: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Most runs one Agent may start per day. Must be at least 1."""


class Usage(ApiModel):
    """Model usage counted so far."""

    input_tokens: Annotated[int, Field(ge=0)] = 0
    """Prompt tokens sent to the model."""

    output_tokens: Annotated[int, Field(ge=0)] = 0
    """Completion tokens the model returned."""

    total_tokens: Annotated[int, Field(ge=0)] = 0
    """Input plus output tokens; kept so that it can be shown as a column."""

    cost_usd: Annotated[float, Field(ge=0)] = Field(default=0.0, alias="costUSD")
    """Cost of the model calls in US dollars, as litellm prices them."""

    def plus(self, input_tokens: int, output_tokens: int, cost_usd: float) -> Usage:
        """The usage after one more model call; totals stay consistent."""
        return Usage(
            input_tokens=self.input_tokens + input_tokens,
            output_tokens=self.output_tokens + output_tokens,
            total_tokens=self.total_tokens + input_tokens + output_tokens,
            cost_usd=self.cost_usd + cost_usd,
        )


class ConditionStatus(StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of an object's state, in the standard Kubernetes shape."""

    type: Annotated[str, Field(min_length=1, max_length=316, pattern=CONDITION_TYPE_PATTERN)]
    """Which aspect this is, in CamelCase; `Ready` summarises the object."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=REASON_PATTERN)]
    """A CamelCase word for why the condition has this status, for programs to match on."""

    message: Annotated[str, Field(max_length=32768)] = ""
    """A sentence for people: what is going on and, when something is wrong, what to do about it."""

    last_transition_time: datetime
    """When the status last changed (not when the condition was last written)."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this condition was computed from."""


Conditions = Annotated[
    list[Condition],
    Field(max_length=MAX_CONDITIONS, json_schema_extra=k8s(list_map_keys=("type",))),
]


class StatusBase(ApiModel):
    """What every kind's status reports: which generation it reflects and its conditions."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation the operator last acted on; behind metadata.generation means catching up."""

    conditions: Conditions = Field(default_factory=list)
    """Current state in standard conditions; `Ready` says whether the object is doing its job."""


class Risk(StrEnum):
    """How much harm a tool call can do, which decides how much autonomy a policy grants it."""

    READ_ONLY = "read-only"
    IDEMPOTENT = "idempotent"
    DESTRUCTIVE = "destructive"


class RunPhase(StrEnum):
    """Where an AgentRun is in its life; a summary for display, the conditions carry the detail."""

    PENDING = "Pending"
    RUNNING = "Running"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    BUDGET_EXCEEDED = "BudgetExceeded"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        """True for the phases a run never leaves."""
        return self in _FINISHED


_FINISHED = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.BUDGET_EXCEEDED, RunPhase.CANCELLED})
