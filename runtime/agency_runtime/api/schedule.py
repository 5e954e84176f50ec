"""The AgentSchedule kind: start runs of an agent on a cron schedule, on signals, or both."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from agency_runtime.api.common import AgentReference, RunReference, StatusBase
from agency_runtime.api.cron import CRON_PATTERN
from agency_runtime.api.meta import (
    DNS_LABEL_PATTERN,
    DNS_LABEL_SHAPE,
    ApiModel,
    CrdFacts,
    PrinterColumn,
    Resource,
    k8s,
    rule,
    shape,
)

MAX_SCHEDULE_NAME = 52
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
SIGNAL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# CEL has no time zone database lookup, but timestamp accessors take a zone name and fail on unknown ones;
# a failing rule is a refused object, so this is how the API server learns whether a zone exists.
# "Local" would mean the API server's own zone, which says nothing about where the schedule is meant.
_TIME_ZONE_EXISTS = "self != 'Local' && timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0"


class ConcurrencyPolicy(StrEnum):
    """What to do when a run is due while the previous one is still going."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class Threshold(ApiModel):
    """Start a run only after enough significant events arrive within a window."""

    count: Annotated[int, Field(ge=1, le=10_000)]
    """How many significant events are needed."""

    window_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)]
    """The sliding window they must fall in, in seconds."""


class SignalTrigger(ApiModel):
    """Start a run when a matching CloudEvent arrives."""

    name: Annotated[
        str,
        Field(
            min_length=1, max_length=63, pattern=SIGNAL_NAME_PATTERN, json_schema_extra=shape(DNS_LABEL_SHAPE)
        ),
    ]
    """A short id for this trigger, unique within the schedule; recorded in the run's trigger."""

    type: Annotated[str, Field(min_length=1, max_length=256)]
    """The CloudEvents `type` to match exactly, or a prefix when it ends with `*`
    (for example `com.example.coldchain.*`)."""

    source: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """The CloudEvents `source` to match exactly, or a prefix when it ends with `*`. Unset matches any
    source."""

    significance: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    """A CEL expression over the event's `data` (and `type`, `source`, `subject`) that must be true for the
    event to count, for example `data.celsius > 8.0`. Unset means every matching event counts."""

    threshold: Threshold | None = None
    """Wait for this many significant events in a window before starting a run. Unset: start on each."""


class AgentScheduleSpec(ApiModel):
    """When to start runs of an agent and with what input."""

    model_config = ConfigDict(
        json_schema_extra=k8s(
            rule(
                "has(self.cron) || (has(self.signals) && size(self.signals) > 0)",
                "a schedule needs spec.cron, spec.signals, or both: set when it should start runs",
            ),
            rule(
                "!has(self.timeZone) || has(self.cron)",
                "applies only to spec.cron: set spec.cron or remove spec.timeZone",
                field_path=".timeZone",
            ),
        )
    )

    agent_ref: AgentReference
    """The Agent whose runs this schedule starts."""

    input: Annotated[str, Field(max_length=65536)] = ""
    """The input of each run, a template in which `{{ scheduledTime }}`, `{{ signal.type }}`,
    `{{ signal.source }}` and `{{ signal.data.<field> }}` are replaced. At most 64 KiB."""

    cron: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=128,
                json_schema_extra=k8s(
                    rule(
                        f"self.matches('{CRON_PATTERN}')",
                        "must be five fields (minute hour day-of-month month day-of-week) such as "
                        "'*/15 * * * *', or one of @yearly, @monthly, @weekly, @daily, @hourly",
                    )
                ),
            ),
        ]
        | None
    ) = None
    """When to start runs, in cron syntax: five fields (minute hour day-of-month month day-of-week),
    for example `*/15 * * * *`, or @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly."""

    time_zone: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=64,
                pattern=TIME_ZONE_PATTERN,
                json_schema_extra=k8s(
                    rule(
                        _TIME_ZONE_EXISTS,
                        "must be an IANA time zone name such as 'Europe/Amsterdam' or 'UTC'",
                    )
                ),
            ),
        ]
        | None
    ) = None
    """The IANA time zone the cron schedule is read in, for example `Europe/Amsterdam`. Defaults to UTC."""

    signals: Annotated[
        list[SignalTrigger], Field(max_length=16, json_schema_extra=k8s(list_map_keys=("name",)))
    ] = Field(default_factory=list)
    """CloudEvents that start runs, each trigger name once."""

    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.FORBID
    """When a run is due while an earlier one still runs: Allow starts another, Forbid skips the new one,
    Replace cancels the old one. Defaults to Forbid."""

    starting_deadline_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    """A run that could not start within this many seconds of its time is skipped. Unset: no deadline."""

    suspend: bool = False
    """True stops new runs from starting; runs in flight go on."""

    successful_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """How many succeeded runs to keep. Defaults to 3."""

    failed_runs_history_limit: Annotated[int, Field(ge=0, le=100)] = 1
    """How many runs that did not succeed to keep. Defaults to 1."""


class AgentScheduleStatus(StatusBase):
    """What the scheduler last did."""

    active: Annotated[list[RunReference], Field(max_length=100)] = Field(default_factory=list)
    """Runs started by this schedule that have not finished."""

    last_schedule_time: datetime | None = None
    """When a run was last started."""

    last_successful_time: datetime | None = None
    """When a run started by this schedule last succeeded."""

    next_schedule_time: datetime | None = None
    """When the cron schedule next fires."""

    last_signal_time: datetime | None = None
    """When a matching signal last arrived."""


class AgentSchedule(Resource):
    """Starts runs of an agent on a cron schedule, when CloudEvents arrive, or both."""

    kind: Literal["AgentSchedule"] = "AgentSchedule"
    spec: AgentScheduleSpec
    """When to start runs of an agent (on a cron schedule, on CloudEvents, or both) and with what input."""
    status: AgentScheduleStatus = Field(default_factory=AgentScheduleStatus)
    """What the operator last saw; written by the operator."""

    crd: ClassVar[CrdFacts] = CrdFacts(
        plural="agentschedules",
        short_names=("agsched",),
        columns=(
            PrinterColumn("Agent", "string", ".spec.agentRef.name", "The Agent whose runs are started"),
            PrinterColumn("Cron", "string", ".spec.cron", "The cron schedule"),
            PrinterColumn("Suspend", "boolean", ".spec.suspend", "Whether new runs are held"),
            PrinterColumn("Last-Schedule", "date", ".status.lastScheduleTime", "When a run was last started"),
            PrinterColumn("Time-Zone", "string", ".spec.timeZone", "Time zone of the cron schedule", 1),
            PrinterColumn("Next", "date", ".status.nextScheduleTime", "When cron next fires", 1),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp", "When the schedule was created"),
        ),
        max_name_length=MAX_SCHEDULE_NAME,
        name_pattern=DNS_LABEL_PATTERN,
    )
