"""From one accepted event to the runs it starts: which schedules' triggers it concerns, whether it is
significant, whether a threshold is reached, and what the concurrency policy allows.

Each schedule starts at most one run per event (its name is derived from the schedule and the event's
`source` + `id`), through the first of its triggers that fires; a redelivered event finds its run and
starts nothing new.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from agency_operator.triggers.cron import decide_concurrency
from agency_operator.triggers.runs import build_run_for_signal, signal_run_name
from agency_operator.triggers.signals.event import Signal
from agency_operator.triggers.signals.matching import (
    SignificanceError,
    ThresholdWindows,
    is_significant,
    trigger_matches,
)
from agency_operator.triggers.signals.ports import RunCreator, ScheduleIndex
from agency_runtime.api.schedule import AgentSchedule, SignalTrigger

log = logging.getLogger(__name__)

_ALREADY = "this event already has a run"


class Outcome(StrEnum):
    """What one schedule's trigger did with the event."""

    CREATED = "Created"
    """A new run was started."""
    EXISTS = "Exists"
    """The run for this event already exists (a redelivery): nothing new started."""
    SKIPPED = "Skipped"
    """concurrencyPolicy Forbid and a run of the schedule is still active."""
    SUSPENDED = "Suspended"
    """The schedule is suspended."""
    INSIGNIFICANT = "Insignificant"
    """The significance expression was false."""
    BELOW_THRESHOLD = "BelowThreshold"
    """Significant, counted, but the threshold is not reached yet."""
    ERROR = "Error"
    """The significance expression does not compile or failed on this event."""


@dataclass(frozen=True)
class TriggerResult:
    """One line of the endpoint's answer: a schedule, its trigger, what happened and the run if any."""

    schedule: str
    trigger: str
    outcome: Outcome
    run: str | None
    message: str

    def to_json(self) -> dict[str, str | None]:
        return {
            "schedule": self.schedule,
            "trigger": self.trigger,
            "outcome": self.outcome.value,
            "run": self.run,
            "message": self.message,
        }


class SignalDispatcher:
    """Matches events against the schedules of a namespace and starts their runs.

    `clock` gives seconds (monotonic is fine) for the threshold windows and `wall_clock` the arrival time
    recorded on runs; both are injected so tests control time.
    """

    def __init__(
        self,
        schedules: ScheduleIndex,
        runs: RunCreator,
        *,
        windows: ThresholdWindows | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._schedules = schedules
        self._runs = runs
        self._windows = windows or ThresholdWindows()
        self._clock = clock
        self._wall_clock = wall_clock

    async def dispatch(self, namespace: str, signal: Signal) -> list[TriggerResult]:
        """Every schedule in `namespace` with a trigger matching the event's type and source, and what
        happened there. Schedules whose triggers do not match are not mentioned."""
        results: list[TriggerResult] = []
        for schedule in await self._schedules.schedules(namespace):
            found = await self._one_schedule(namespace, schedule, signal)
            if found:
                await self._record(namespace, schedule.metadata.name)
            results.extend(found)
        return results

    async def _record(self, namespace: str, schedule: str) -> None:
        """Best effort: status.lastSignalTime is for people reading the schedule; the run matters more."""
        try:
            await self._schedules.record_signal(namespace, schedule, self._wall_clock())
        except Exception as error:
            log.warning(
                "AgentSchedule %s/%s: could not record lastSignalTime: %s", namespace, schedule, error
            )

    async def _one_schedule(
        self, namespace: str, schedule: AgentSchedule, signal: Signal
    ) -> list[TriggerResult]:
        name = schedule.metadata.name
        results: list[TriggerResult] = []
        for trigger in schedule.spec.signals:
            if not trigger_matches(trigger, signal):
                continue
            if schedule.spec.suspend:
                return [
                    TriggerResult(name, trigger.name, Outcome.SUSPENDED, None, "the schedule is suspended")
                ]
            result = await self._one_trigger(namespace, schedule, trigger, signal)
            results.append(result)
            if result.run is not None:
                break  # one run per schedule per event
        return results

    async def _one_trigger(
        self, namespace: str, schedule: AgentSchedule, trigger: SignalTrigger, signal: Signal
    ) -> TriggerResult:
        name = schedule.metadata.name
        try:
            significant = is_significant(trigger.significance, signal)
        except SignificanceError as error:
            log.warning("AgentSchedule %s/%s trigger %s: %s", namespace, name, trigger.name, error)
            return TriggerResult(name, trigger.name, Outcome.ERROR, None, str(error))
        if not significant:
            return TriggerResult(
                name, trigger.name, Outcome.INSIGNIFICANT, None, "the significance expression is false"
            )
        run_name = signal_run_name(name, signal.source, signal.id)
        if trigger.threshold is not None:
            if await self._runs.exists(namespace, run_name):
                return TriggerResult(
                    name, trigger.name, Outcome.EXISTS, run_name, "this event already has a run"
                )
            fired, count = self._windows.record(
                (namespace, name, trigger.name), signal, trigger.threshold, self._clock()
            )
            if not fired:
                return TriggerResult(
                    name,
                    trigger.name,
                    Outcome.BELOW_THRESHOLD,
                    None,
                    f"{count} of {trigger.threshold.count} significant events within "
                    f"{trigger.threshold.window_seconds}s",
                )
        return await self._start(namespace, schedule, trigger, signal, run_name)

    async def _start(
        self, namespace: str, schedule: AgentSchedule, trigger: SignalTrigger, signal: Signal, run_name: str
    ) -> TriggerResult:
        name = schedule.metadata.name
        active = await self._runs.active_runs(namespace, name)
        decision = decide_concurrency(schedule.spec.concurrency_policy, active, run_name)
        if not decision.create:
            outcome = Outcome.EXISTS if run_name in active else Outcome.SKIPPED
            return TriggerResult(
                name, trigger.name, outcome, run_name if run_name in active else None, decision.message
            )
        for old in decision.delete:
            await self._runs.cancel(namespace, old)
        manifest = build_run_for_signal(schedule, trigger.name, signal, self._wall_clock())
        if await self._runs.create(manifest):
            return TriggerResult(name, trigger.name, Outcome.CREATED, run_name, decision.message)
        return TriggerResult(name, trigger.name, Outcome.EXISTS, run_name, _ALREADY)
