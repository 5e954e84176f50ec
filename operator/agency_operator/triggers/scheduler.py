"""One step of an AgentSchedule's cron, planned as data: what to create, cancel, prune and record.

The handler (a kopf daemon or timer per AgentSchedule) lists the schedule's runs (label
`agency.dev/schedule=<name>`), calls `plan_cron_step`, and carries the plan out with whatever client it
uses:

1. delete `plan.cancel` (Replace), 2. create `plan.create` (AlreadyExists means another replica or an
earlier attempt did: success), 3. delete `plan.prune` (history limits), 4. merge-patch `plan.status` into
the schedule's status, 5. emit `plan.events`, 6. wake again after `plan.requeue_after` seconds.

Step 4 comes after step 2 on purpose: a crash between them re-plans the same slot, whose run name is the
same, so the create answers AlreadyExists and nothing runs twice. All state is in the schedule's status and
the runs, so a restarted operator or a second replica plans the same thing.

Forbid skips the slot for good (it is recorded as handled and never started late), as the API documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agency_operator.triggers.cron import SlotDecision, SlotOutcome, decide_concurrency, due_slot
from agency_operator.triggers.history import active_run_names, finished_run, runs_to_delete
from agency_operator.triggers.runs import build_run_for_slot
from agency_runtime.api.meta import JsonObject
from agency_runtime.api.schedule import AgentSchedule

#: The longest a schedule's handler sleeps between steps, whatever the next slot: spec changes and run
#: completions are also picked up by this wake-up (the handler may wake earlier on events too).
MAX_REQUEUE_SECONDS = 300.0


#: status.active holds at most this many names (the API's bound).
MAX_ACTIVE_LISTED = 100


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the schedule."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class CronPlan:
    """What one step does; see the module doc for the order."""

    decision: SlotDecision
    create: JsonObject | None
    """The AgentRun to create, or None."""
    cancel: tuple[str, ...]
    """Active runs to delete before creating (concurrencyPolicy Replace)."""
    prune: tuple[str, ...]
    """Finished runs beyond the history limits, to delete."""
    status: JsonObject
    """A merge patch for the schedule's status (camelCase, RFC 3339 times)."""
    events: tuple[Event, ...]
    requeue_after: float | None
    """Seconds until the next step; None when there is no cron (signals only)."""


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _last_success(runs: Sequence[Mapping[str, Any]], known: datetime | None) -> datetime | None:
    times = [f.finished_at for f in map(finished_run, runs) if f is not None and f.succeeded]
    if known is not None:
        times.append(known)
    return max(times, default=None)


def plan_cron_step(schedule: AgentSchedule, runs: Sequence[Mapping[str, Any]], now: datetime) -> CronPlan:
    """Decide one step of the schedule at `now`, given all its runs (as the API server returns them)."""
    spec = schedule.spec
    decision = due_slot(schedule, now)
    active = active_run_names(runs)
    events: list[Event] = []
    create: JsonObject | None = None
    cancel: tuple[str, ...] = ()
    status: JsonObject = {}

    if decision.outcome == SlotOutcome.START and decision.slot is not None:
        manifest = build_run_for_slot(schedule, decision.slot)
        name = manifest["metadata"]["name"]
        concurrency = decide_concurrency(spec.concurrency_policy, active, name)
        if concurrency.create:
            create, cancel = manifest, concurrency.delete
            active = sorted({*active, name} - set(cancel))
            events.append(Event("Normal", "RunStarted", concurrency.message))
            if cancel:
                events.append(Event("Normal", "RunsReplaced", concurrency.message))
        elif name not in active:
            events.append(Event("Normal", "RunSkipped", concurrency.message))
        if decision.missed:
            events.append(Event("Warning", "MissedSlots", decision.message))
        status["lastScheduleTime"] = _rfc3339(decision.slot)
    elif decision.outcome == SlotOutcome.INVALID:
        events.append(Event("Warning", "InvalidCron", decision.message))
    elif decision.outcome == SlotOutcome.MISSED_DEADLINE and decision.slot is not None:
        events.append(Event("Warning", "MissedDeadline", decision.message))
        status["lastScheduleTime"] = _rfc3339(decision.slot)

    finished = [f for f in map(finished_run, runs) if f is not None]
    prune = tuple(
        runs_to_delete(finished, spec.successful_runs_history_limit, spec.failed_runs_history_limit)
    )
    status["active"] = [{"name": name} for name in active[:MAX_ACTIVE_LISTED]]
    status["nextScheduleTime"] = _rfc3339(decision.next_slot) if decision.next_slot else None
    success = _last_success(runs, schedule.status.last_successful_time)
    if success is not None:
        status["lastSuccessfulTime"] = _rfc3339(success)
    requeue = decision.requeue_after(now)
    if requeue is not None:
        requeue = min(requeue, MAX_REQUEUE_SECONDS)
    return CronPlan(decision, create, cancel, prune, status, tuple(events), requeue)
