"""Which cron slot of an AgentSchedule is due, decided from the clock and the schedule's status alone.

Follows Kubernetes CronJob's rules so that operators and users can reason about it the same way:

- every slot gets at most one run, whose name is derived from the slot (`run_name_for_slot`), so two
  operator replicas or a restart between creating the run and recording it in status cannot make a second
  one: creating an existing name fails with AlreadyExists, which the caller treats as done;
- the only state is `status.lastScheduleTime` (or the creation time of a schedule that never ran);
- after downtime only the most recent missed slot is considered, never a burst of catch-up runs, and only
  while it is within `startingDeadlineSeconds` of now;
- counting missed slots is capped (`MAX_MISSED_COUNTED`), so a schedule that was off for a year costs
  the same as one that was off for a minute.

Nothing here reads the clock or sleeps: `now` is a parameter, which is also how tests run a `* * * * *`
schedule through hours of simulated time in milliseconds.

Daylight saving time: croniter reads the expression in the schedule's zone. A wall-clock time skipped in
spring fires at the first instant after the gap (02:30 becomes 03:00); a wall-clock time repeated in autumn
fires once, at its first occurrence, for expressions with fixed hours (as Vixie cron does). Expressions
with `*` in the hour field fire on every real slot through the repeated hour, since their slots are
distinct instants an hour apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from croniter import croniter

from agency_runtime.api.schedule import MAX_SCHEDULE_NAME, AgentSchedule, ConcurrencyPolicy

#: Missed slots are counted up to this many (for the event that says how many were missed); past it the
#: decision says "too many" instead of walking further. CronJob uses the same bound.
MAX_MISSED_COUNTED = 100

#: The longest name a Kubernetes object of a DNS-label kind may have.
MAX_RUN_NAME = 63

#: How far to look back for the most recent slot before giving up (a schedule such as `0 0 29 2 *` fires
#: once every four years; one that fires less often than this is treated as having no recent slot).
_LOOKBACK = timedelta(days=5 * 366)


def _zone(time_zone: str | None) -> ZoneInfo:
    return ZoneInfo(time_zone or "UTC")


def _aware(moment: datetime) -> datetime:
    """Refuse naive datetimes early: a naive `now` would silently be read in the machine's zone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime such as datetime.now(UTC)")
    return moment.astimezone(UTC)


def _fixed_hours(cron: str) -> bool:
    """True when the hour field lists hours (not `*`): such a slot names one wall-clock time a day."""
    hours = croniter(cron).expanded[1]
    return hours != ["*"]


def _is_repeated_wall_time(slot_utc: datetime, zone: ZoneInfo) -> bool:
    """True for the second occurrence of a wall-clock time in the hour that repeats when DST ends."""
    local = slot_utc.astimezone(zone)
    wall = local.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return first < slot_utc and first.astimezone(zone).replace(tzinfo=None) == wall


def _counts(cron: str, zone: ZoneInfo, slot_utc: datetime) -> bool:
    return not (_fixed_hours(cron) and _is_repeated_wall_time(slot_utc, zone))


def next_slot_after(cron: str, time_zone: str | None, after: datetime) -> datetime:
    """The first slot strictly after `after`, in UTC: what the scheduler sleeps until.

    The handler that runs the schedule wakes at this time (a kopf timer or daemon); it is also what goes
    into `status.nextScheduleTime`.
    """
    zone = _zone(time_zone)
    it = croniter(cron, _aware(after).astimezone(zone))
    while True:
        slot = it.get_next(datetime).astimezone(UTC)
        if _counts(cron, zone, slot):
            return slot


def most_recent_slot(cron: str, time_zone: str | None, now: datetime) -> datetime | None:
    """The latest slot at or before `now`, in UTC; None if there is none within the last five years."""
    zone = _zone(time_zone)
    now = _aware(now)
    # croniter's get_prev is strictly before its start; start a microsecond later so `now` itself counts.
    it = croniter(cron, (now + timedelta(microseconds=1)).astimezone(zone))
    floor = now - _LOOKBACK
    while True:
        slot = it.get_prev(datetime).astimezone(UTC)
        if slot < floor:
            return None
        if _counts(cron, zone, slot):
            return slot


class SlotOutcome(StrEnum):
    """What the scheduler should do now."""

    START = "Start"
    """`slot` is due: start its run."""
    NOTHING_DUE = "NothingDue"
    """No slot passed since the last one was handled."""
    MISSED_DEADLINE = "MissedDeadline"
    """The most recent slot passed more than startingDeadlineSeconds ago; it is skipped."""
    SUSPENDED = "Suspended"
    """spec.suspend is true."""
    NO_CRON = "NoCron"
    """The schedule has no spec.cron (signals only)."""
    INVALID = "Invalid"
    """The cron expression never fires or the time zone is unknown; `message` says which. (The API server
    and the operator's admission checks should refuse these; this keeps the scheduler from crashing.)"""


@dataclass(frozen=True)
class SlotDecision:
    """The answer of `due_slot`: what to do now and when to look again."""

    outcome: SlotOutcome
    slot: datetime | None
    """The slot to start (START) or the one skipped (MISSED_DEADLINE), in UTC."""
    missed: int
    """Slots that passed since the last handled one and will never run (not counting `slot` when it
    starts), counted up to MAX_MISSED_COUNTED."""
    too_many_missed: bool
    """More than MAX_MISSED_COUNTED slots were missed; `missed` stops there."""
    next_slot: datetime | None
    """The first slot after now, in UTC: when to wake up next (None without cron)."""
    message: str
    """One sentence for an event or a log line."""

    def requeue_after(self, now: datetime) -> float | None:
        """Seconds from `now` until the next slot (never negative); None when there is nothing to wait for."""
        if self.next_slot is None:
            return None
        return max(0.0, (self.next_slot - _aware(now)).total_seconds())


def _count_missed(cron: str, zone: ZoneInfo, after: datetime, before: datetime) -> tuple[int, bool]:
    """Slots strictly between `after` and `before`, up to MAX_MISSED_COUNTED; True if there were more."""
    it = croniter(cron, after.astimezone(zone))
    count = 0
    while True:
        slot = it.get_next(datetime).astimezone(UTC)
        if slot >= before:
            return count, False
        if _counts(cron, zone, slot):
            count += 1
            if count > MAX_MISSED_COUNTED:
                return MAX_MISSED_COUNTED, True


def due_slot(schedule: AgentSchedule, now: datetime) -> SlotDecision:
    """Which slot, if any, the schedule should start a run for at `now`.

    The state is `status.lastScheduleTime`, falling back to the schedule's creation time (a new schedule
    does not start runs for slots before it existed). The caller, after starting the run for a START
    decision (or finding it AlreadyExists), records `slot` as `status.lastScheduleTime`. It does the same
    for MISSED_DEADLINE so the skipped slot is not looked at again.
    """
    spec = schedule.spec
    now = _aware(now)
    if spec.cron is None:
        return SlotDecision(SlotOutcome.NO_CRON, None, 0, False, None, "the schedule has no cron")
    try:
        cron, zone = spec.cron, _zone(spec.time_zone)
        upcoming = next_slot_after(cron, spec.time_zone, now)
    except (ValueError, KeyError) as error:  # CroniterError is a ValueError, ZoneInfoNotFoundError a KeyError
        return SlotDecision(
            SlotOutcome.INVALID,
            None,
            0,
            False,
            None,
            f"cron {spec.cron!r} in {spec.time_zone or 'UTC'}: {error}",
        )
    if spec.suspend:
        return SlotDecision(SlotOutcome.SUSPENDED, None, 0, False, upcoming, "the schedule is suspended")

    earliest = schedule.status.last_schedule_time or schedule.metadata.creation_timestamp
    latest = most_recent_slot(cron, spec.time_zone, now)
    if latest is None or (earliest is not None and latest <= _aware(earliest)):
        return SlotDecision(SlotOutcome.NOTHING_DUE, None, 0, False, upcoming, "no slot is due")

    missed, too_many = (0, False) if earliest is None else _count_missed(cron, zone, _aware(earliest), latest)
    deadline = spec.starting_deadline_seconds
    if deadline is not None and latest < now - timedelta(seconds=deadline):
        return SlotDecision(
            SlotOutcome.MISSED_DEADLINE,
            latest,
            missed + 1 if not too_many else missed,
            too_many,
            upcoming,
            f"the slot at {latest.isoformat()} is more than startingDeadlineSeconds={deadline} old; "
            "it is skipped and the next slot will run",
        )
    extra = ""
    if too_many:
        extra = f"; more than {MAX_MISSED_COUNTED} earlier slots were missed and are not run"
    elif missed:
        extra = f"; {missed} earlier slot(s) were missed and are not run"
    message = f"the slot at {latest.isoformat()} is due{extra}"
    return SlotDecision(SlotOutcome.START, latest, missed, too_many, upcoming, message)


def run_name_for_slot(schedule_name: str, slot: datetime) -> str:
    """The name of the run for one slot: `<schedule>-<minutes since the epoch>`, as CronJob names its Jobs.

    The same slot always gives the same name, which is what makes "one run per slot" hold across restarts
    and replicas. Schedule names are at most MAX_SCHEDULE_NAME (52) characters, so the name fits the
    63-character limit until the year 3870; a longer name is shortened rather than refused.
    """
    minutes = int(_aware(slot).timestamp()) // 60
    suffix = f"-{minutes}"
    prefix = schedule_name[: min(MAX_SCHEDULE_NAME, MAX_RUN_NAME - len(suffix))].rstrip("-")
    return prefix + suffix


@dataclass(frozen=True)
class ConcurrencyDecision:
    """What the concurrency policy says about a new run while others are active."""

    create: bool
    """Create the new run."""
    delete: tuple[str, ...]
    """Active runs to cancel (delete) first; only Replace names any."""
    message: str
    """Why, in one sentence (for the Forbid skip, the event that says a slot was skipped)."""


def decide_concurrency(
    policy: ConcurrencyPolicy, active_runs: list[str] | tuple[str, ...], new_run: str
) -> ConcurrencyDecision:
    """Apply Allow, Forbid or Replace to `active_runs`: the schedule's runs that have not finished.

    A new run whose name is already active exists (a redelivery or a second replica): nothing is created
    or cancelled, whatever the policy.
    """
    others = tuple(name for name in active_runs if name != new_run)
    if new_run in active_runs:
        return ConcurrencyDecision(False, (), f"run {new_run} already exists and is active")
    if not others or policy == ConcurrencyPolicy.ALLOW:
        return ConcurrencyDecision(True, (), f"starting run {new_run}")
    if policy == ConcurrencyPolicy.FORBID:
        return ConcurrencyDecision(
            False,
            (),
            f"skipped run {new_run}: concurrencyPolicy is Forbid and {', '.join(others)} "
            f"{'is' if len(others) == 1 else 'are'} still active",
        )
    return ConcurrencyDecision(
        True, others, f"cancelling {', '.join(others)} (concurrencyPolicy Replace) to start run {new_run}"
    )
