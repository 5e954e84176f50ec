"""The AgentRun kind: one execution of an agent, immutable once created except for approval decisions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from agency_runtime.api.common import (
    AgentReference,
    LocalObjectReference,
    Risk,
    RunBudget,
    RunPhase,
    RunReference,
    StatusBase,
    Usage,
)
from agency_runtime.api.meta import (
    DNS_LABEL_PATTERN,
    DNS_LABEL_SHAPE,
    ApiModel,
    CrdFacts,
    JsonObject,
    PrinterColumn,
    Resource,
    k8s,
    rule,
    shape,
)

MAX_INPUT = 65536
MAX_RESULT = 32768
MAX_PLAN = 4096
MAX_LESSON = 600
MAX_JUDGE_REASON = 1024
PROPOSAL_ID_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"

ProposalId = Annotated[
    str,
    Field(min_length=1, max_length=63, pattern=PROPOSAL_ID_PATTERN, json_schema_extra=shape(DNS_LABEL_SHAPE)),
]

#: Every spec field but `approvals` is fixed at creation; each gets a rule so the error names the field.
IMMUTABLE_FIELDS = ("agentRef", "input", "parentRunRef", "trigger", "budget", "ttlSecondsAfterFinished")


def _immutable(field: str) -> JsonObject:
    """A transition rule on spec; `self.?f == oldSelf.?f` would say the same but costs too much for CEL."""
    return rule(
        f"has(self.{field}) == has(oldSelf.{field})"
        f" && (!has(self.{field}) || self.{field} == oldSelf.{field})",
        "cannot be changed after the AgentRun is created; create a new AgentRun instead",
        field_path=f".{field}",
    )


class TriggerType(StrEnum):
    """What started a run."""

    MANUAL = "Manual"
    SCHEDULE = "Schedule"
    SIGNAL = "Signal"
    DELEGATION = "Delegation"


class SignalEvent(ApiModel):
    """The CloudEvent that started a run."""

    id: Annotated[str, Field(min_length=1, max_length=256)]
    """The event's `id`."""

    type: Annotated[str, Field(min_length=1, max_length=256)]
    """The event's `type`."""

    source: Annotated[str, Field(min_length=1, max_length=1024)]
    """The event's `source`."""

    time: datetime | None = None
    """The event's `time`, when it had one."""


class Trigger(ApiModel):
    """Why the run exists."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "self.type != 'Signal' || has(self.signal)",
                "a run triggered by a Signal records it in spec.trigger.signal",
                field_path=".signal",
            ),
        )
    )

    type: TriggerType = TriggerType.MANUAL
    """Manual (created by a person or program), Schedule (cron), Signal (a CloudEvent) or Delegation
    (another run called this agent as a tool). Defaults to Manual."""

    schedule_ref: LocalObjectReference | None = None
    """The AgentSchedule that started the run, for Schedule and Signal triggers."""

    signal: SignalEvent | None = None
    """The event that started the run, for Signal triggers."""


class Decision(StrEnum):
    """An approver's answer to a proposed tool call."""

    APPROVED = "Approved"
    REJECTED = "Rejected"


class Approval(ApiModel):
    """A decision on one proposed tool call, recorded in the run's spec so it is part of the run's record."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "self == oldSelf",
                "a recorded approval decision cannot be changed",
                reason="FieldValueForbidden",
            )
        )
    )

    proposal_id: ProposalId
    """The id of the proposal in status.pendingApprovals this decides."""

    decision: Decision
    """Approved lets the call go ahead; Rejected tells the agent it may not make it."""

    by: Annotated[str, Field(min_length=1, max_length=253)]
    """Who decided: a user name, or `system:serviceaccount:<namespace>:<name>`. The operator honours a
    decision only from an approver the AgentPolicy names."""

    at: datetime
    """When the decision was made."""

    reason: Annotated[str, Field(max_length=1024)] | None = None
    """Why, in a sentence; shown to the agent."""


class AgentRunSpec(ApiModel):
    """What to run. Fixed at creation, except that approval decisions can be added to spec.approvals."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            *(_immutable(field) for field in IMMUTABLE_FIELDS),
            rule(
                "!has(oldSelf.approvals) || (has(self.approvals)"
                " && oldSelf.approvals.all(o, self.approvals.exists(n, n.proposalId == o.proposalId)))",
                "can only grow: recorded decisions cannot be removed",
                field_path=".approvals",
                reason="FieldValueForbidden",
            ),
            rule(
                "!has(self.trigger) || self.trigger.type != 'Delegation' || has(self.parentRunRef)",
                "a run triggered by Delegation names the delegating run in spec.parentRunRef",
                field_path=".parentRunRef",
            ),
        )
    )

    agent_ref: AgentReference
    """The Agent to run."""

    input: Annotated[str, Field(max_length=MAX_INPUT)] = ""
    """What the agent is asked to do, as text (at most 64 KiB)."""

    parent_run_ref: RunReference | None = None
    """The run that delegated this one, when an agent called another agent as a tool."""

    trigger: Trigger | None = None
    """What started the run. Unset means Manual."""

    budget: RunBudget | None = None
    """Lower limits for this run than its policy's per-run budget. Limits above the policy's are refused
    when the run starts (the run fails with reason BudgetAbovePolicy)."""

    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=365 * 24 * 3600)] | None = None
    """How long to keep this run after it finishes. Unset means the policy's ttlSecondsAfterFinished."""

    approvals: Annotated[
        list[Approval],
        Field(max_length=64, json_schema_extra=k8s(list_map_keys=("proposalId",))),
    ] = Field(default_factory=list)
    """Decisions on the run's proposed tool calls (status.pendingApprovals), one per proposal. The only
    part of the spec that can change: entries can be added, never changed or removed."""


class PendingApproval(ApiModel):
    """A tool call the agent proposed, held until an approver decides."""

    proposal_id: ProposalId
    """The id to decide on in spec.approvals."""

    tool: Annotated[str, Field(min_length=1, max_length=64)]
    """The tool the agent wants to call."""

    arguments_summary: Annotated[str, Field(max_length=4096)] = ""
    """The call's arguments, shortened for reading."""

    risk: Risk
    """The risk class of the call."""

    reason: Annotated[str, Field(max_length=4096)] | None = None
    """Why the agent wants to make the call."""

    requested_at: datetime
    """When the agent proposed it."""


class JudgeVerdict(ApiModel):
    """The judge model's verdict on a finished run."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule("self.scored == has(self.score)", "a scored verdict has a score, an unscored one none")
        )
    )

    scored: bool
    """Whether the judge gave a score; false when it could not (its reason says why)."""

    score: Annotated[float, Field(ge=0, le=1)] | None = None
    """How well the run met the rubric, from 0 (not at all) to 1 (fully)."""

    reason: Annotated[str, Field(max_length=MAX_JUDGE_REASON)] = ""
    """The judge's reason, or why there is no score."""

    model: Annotated[str, Field(max_length=256)] = ""
    """The model that judged."""


class AgentRunStatus(StatusBase):
    """Progress and outcome of the run."""

    phase: RunPhase | None = None
    """Pending, Running, WaitingForApproval, Succeeded, Failed, BudgetExceeded or Cancelled; a summary for
    display, the conditions carry the detail."""

    bound_policy_ref: LocalObjectReference | None = None
    """The AgentPolicy that governed the run, fixed when it started."""

    step_count: Annotated[int, Field(ge=0)] = 0
    """Plan/act/observe steps taken."""

    usage: Usage | None = None
    """Model tokens and cost used so far."""

    trace_id: Annotated[str, Field(pattern=TRACE_ID_PATTERN, min_length=32, max_length=32)] | None = None
    """The OpenTelemetry trace id of the run, to look it up in the tracing backend."""

    result: Annotated[str, Field(max_length=MAX_RESULT)] | None = None
    """The agent's final answer, at most 32 KiB."""

    pending_approvals: Annotated[
        list[PendingApproval], Field(max_length=64, json_schema_extra=k8s(list_map_keys=("proposalId",)))
    ] = Field(default_factory=list)
    """Proposed tool calls waiting for a decision in spec.approvals."""

    plan: Annotated[str, Field(max_length=MAX_PLAN)] | None = None
    """The agent's current plan (as it last revised it with update_plan), shortened; written by the run."""

    judge: JudgeVerdict | None = None
    """The judge's score of the outcome, when the Agent has a judge."""

    lesson: Annotated[str, Field(max_length=MAX_LESSON)] | None = None
    """What the run's reflection learned, kept in the agent's memory for its next runs."""

    start_time: datetime | None = None
    """When the run started."""

    completion_time: datetime | None = None
    """When the run finished."""


class AgentRun(Resource):
    """One execution of an agent: its input, limits and record. Created by people, schedules or agents."""

    kind: Literal["AgentRun"] = "AgentRun"
    spec: AgentRunSpec
    """What to run. Fixed at creation, except that approval decisions can be added to spec.approvals."""
    status: AgentRunStatus = Field(default_factory=AgentRunStatus)
    """Progress and outcome; written by the operator."""

    crd: ClassVar[CrdFacts] = CrdFacts(
        plural="agentruns",
        short_names=("agrun",),
        columns=(
            PrinterColumn("Agent", "string", ".spec.agentRef.name", "The Agent that runs"),
            PrinterColumn("Phase", "string", ".status.phase", "Where the run is"),
            PrinterColumn("Steps", "integer", ".status.stepCount", "Steps taken"),
            PrinterColumn("Tokens", "integer", ".status.usage.totalTokens", "Tokens used"),
            PrinterColumn("Cost", "number", ".status.usage.costUSD", "US dollars spent"),
            PrinterColumn("Trigger", "string", ".spec.trigger.type", "What started the run", 1),
            PrinterColumn("Trace", "string", ".status.traceId", "OpenTelemetry trace id", 1),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp", "When the run was created"),
        ),
        max_name_length=63,
        name_pattern=DNS_LABEL_PATTERN,
        # The operator lists one Agent's runs (its status: runs in flight, usage today) by this field.
        selectable_fields=(".spec.agentRef.name",),
    )
