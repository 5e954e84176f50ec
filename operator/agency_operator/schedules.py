"""AgentSchedule reconciliation: validate the spec into a condition, then carry out one cron step.

Called, like runs, level-based and idempotent from three places: the schedule's own events, events of
the runs it started (a finished run may let a Forbid schedule go on, and moves lastSuccessfulTime), and
the resync thread every `AGENCY_RESYNC_SECONDS` (10 by default), and a wake-up at the schedule's next
slot (`wakeups`: each reconcile returns the seconds until then), which is what starts a slot's run on
time, as CronJob's controller requeues each CronJob for its next schedule time. The resync is the safety
net for a wake-up lost with a restart: a slot then starts at most one resync interval late. No kopf
daemon or timer: kopf would put a finalizer on every schedule, and schedules could then not be deleted
while the operator is down (see `resync`).

All state is the schedule's status and its runs (whose names are derived from the slot), so a restarted
operator or a second replica plans the same step and a repeated create answers AlreadyExists.

The clock is `clock.now()`: the real one, or for tests a file holding an instant (`AGENCY_TEST_CLOCK_FILE`)
so that a `* * * * *` schedule can be walked through minutes without waiting for them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agency_operator import events
from agency_operator.kube import JsonDict, Kube, KubeError, path_for
from agency_operator.status import StatusDraft, ready
from agency_operator.triggers.history import SCHEDULE_LABEL
from agency_operator.triggers.scheduler import CronPlan, plan_cron_step
from agency_runtime.api.checks import validate_schedule
from agency_runtime.api.meta import API_VERSION
from agency_runtime.api.schedule import AgentSchedule

Clock = Callable[[], datetime]


def real_clock() -> datetime:
    return datetime.now(UTC)


def file_clock(path: Path) -> Clock:
    """A clock that reads an RFC 3339 instant from `path` at every call (test hook); the real time while
    the file is missing or empty."""

    def now() -> datetime:
        try:
            raw = path.read_text().strip()
        except FileNotFoundError:
            raw = ""
        if not raw:
            return real_clock()
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    return now


def schedule_status(schedule: AgentSchedule, current: JsonDict | None, problems: list[str]) -> StatusDraft:
    """The Ready condition from the spec's problems (pure); the cron fields come from the plan."""
    draft = StatusDraft(current, schedule.metadata.generation)
    if problems:
        ready(draft, False, "InvalidSpec", "; ".join(problems))
    elif schedule.spec.suspend:
        ready(draft, True, "Suspended", "The schedule is suspended; no cron runs start.")
    else:
        ready(draft, True, "Scheduling", "The schedule starts runs on its cron and signals.")
    return draft


def _carry_out(kube: Kube, namespace: str, plan: CronPlan, crash: Callable[[str], None]) -> None:
    """Steps 1-3 of the plan: cancel, create (AlreadyExists is success), prune."""
    runs = path_for(API_VERSION, "agentruns", namespace)
    for name in plan.cancel:
        kube.delete(f"{runs}/{name}")
    if plan.create is not None:
        try:
            kube.create(runs, plan.create)
        except KubeError as error:
            if not error.conflict:  # 409: this slot's run exists (a restart or another replica made it)
                raise
        crash("schedule-run-created")  # test hook: die before the slot is recorded in status
    for name in plan.prune:
        kube.delete(f"{runs}/{name}")


def _no_crash(step: str) -> None:
    return None


def reconcile_schedule(
    kube: Kube,
    namespace: str,
    name: str,
    clock: Clock = real_clock,
    crash: Callable[[str], None] = _no_crash,
) -> float | None:
    """One level-based step of the schedule; `crash` is the integration tests' hook (`runs.crash_point`).

    Returns the seconds until the schedule's next slot (when to reconcile it again), or None when no
    slot is coming (no cron, an invalid spec, or the schedule is gone).
    """
    path = path_for(API_VERSION, "agentschedules", namespace, name)
    body = kube.get_or_none(path)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    schedule = AgentSchedule.from_k8s(body)
    problems = validate_schedule(schedule.spec)
    draft = schedule_status(schedule, body.get("status"), problems)
    notes: list[tuple[str, str, str]] = []
    requeue_after: float | None = None
    if not problems:
        owned = kube.list(path_for(API_VERSION, "agentruns", namespace), f"{SCHEDULE_LABEL}={name}")
        plan = plan_cron_step(schedule, owned, clock())
        _carry_out(kube, namespace, plan, crash)
        draft.set(**plan.status)
        notes = [(e.type, e.reason, e.message) for e in plan.events]
        requeue_after = plan.requeue_after
    patch = draft.patch()
    if patch is not None and not kube.patch_status(path, patch):
        return None  # deleted meanwhile: no wake-up, no Events
    events.post_transitions(kube, body, draft.transitions)
    for type_, reason, message in notes:
        events.post(kube, body, type_, reason, message)
    return requeue_after
