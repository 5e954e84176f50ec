"""Cron slots of an AgentSchedule, driven by a fake clock: one run per slot, no burst, deadlines, DST."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agency_operator.triggers.cron import (
    MAX_MISSED_COUNTED,
    SlotOutcome,
    decide_concurrency,
    due_slot,
    next_slot_after,
    run_name_for_slot,
)
from agency_operator.triggers.runs import build_run_for_slot
from agency_runtime.api.schedule import AgentSchedule, ConcurrencyPolicy

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def schedule(name: str = "report", created: datetime = T0, **spec: Any) -> AgentSchedule:
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "ops",
            "uid": "4c1e8a56-0000-4000-8000-000000000001",
            "creationTimestamp": created.isoformat(),
        },
        "spec": {"agentRef": {"name": "reporter"}, "cron": "* * * * *", **spec},
    }
    return AgentSchedule.model_validate(body)


@dataclass
class FakeCluster:
    """What the API server would hold: the runs by name and the schedule's status (the only state)."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_attempts: int = 0

    def create(self, manifest: dict[str, Any]) -> bool:
        self.created_attempts += 1
        name = manifest["metadata"]["name"]
        if name in self.runs:
            return False  # AlreadyExists
        self.runs[name] = manifest
        return True


class Scheduler:
    """One operator replica's scheduling step, as a handler would do it, with no memory of its own."""

    def __init__(self, cluster: FakeCluster, obj: AgentSchedule) -> None:
        self.cluster = cluster
        self.obj = obj

    def tick(self, now: datetime, *, crash_before_status: bool = False) -> None:
        decision = due_slot(self.obj, now)
        if decision.outcome == SlotOutcome.START:
            assert decision.slot is not None
            self.cluster.create(build_run_for_slot(self.obj, decision.slot))
        if decision.outcome in (SlotOutcome.START, SlotOutcome.MISSED_DEADLINE) and not crash_before_status:
            self.obj.status.last_schedule_time = decision.slot


def test_every_minute_schedule_starts_exactly_one_run_per_minute_across_a_restart() -> None:
    cluster = FakeCluster()
    obj = schedule()
    replica = Scheduler(cluster, obj)
    now = T0
    for _ in range(5 * 6):  # five minutes, ticking every 10 seconds
        now += timedelta(seconds=10)
        replica.tick(now)
    # Restart: a new scheduler with nothing but the schedule object (its status) carries on.
    restarted = Scheduler(cluster, AgentSchedule.model_validate(obj.model_dump(by_alias=True)))
    for _ in range(5 * 6):
        now += timedelta(seconds=10)
        restarted.tick(now)
    minutes = [int((T0 + timedelta(minutes=m)).timestamp()) // 60 for m in range(1, 11)]
    assert sorted(cluster.runs) == [f"report-{m}" for m in minutes]


def test_crash_between_creating_a_run_and_recording_it_does_not_start_a_second_run() -> None:
    cluster = FakeCluster()
    obj = schedule()
    replica = Scheduler(cluster, obj)
    replica.tick(T0 + timedelta(minutes=1, seconds=5), crash_before_status=True)
    replica.tick(T0 + timedelta(minutes=1, seconds=20))
    assert list(cluster.runs) == [run_name_for_slot("report", T0 + timedelta(minutes=1))]
    assert cluster.created_attempts == 2


def test_two_replicas_ticking_the_same_schedule_start_one_run_per_slot() -> None:
    cluster = FakeCluster()
    obj = schedule()
    a, b = Scheduler(cluster, obj), Scheduler(cluster, obj.model_copy(deep=True))
    for second in range(15, 180, 15):
        now = T0 + timedelta(seconds=second)
        a.tick(now)
        b.tick(now + timedelta(seconds=1))
    assert len(cluster.runs) == 2  # slots 09:01 and 09:02


def test_a_new_schedule_does_not_run_slots_from_before_it_was_created() -> None:
    obj = schedule(created=T0 + timedelta(seconds=30))
    assert due_slot(obj, T0 + timedelta(seconds=50)).outcome == SlotOutcome.NOTHING_DUE
    decision = due_slot(obj, T0 + timedelta(seconds=65))
    assert decision.outcome == SlotOutcome.START
    assert decision.slot == T0 + timedelta(minutes=1)


def test_after_downtime_only_the_most_recent_missed_slot_runs_never_a_burst() -> None:
    cluster = FakeCluster()
    obj = schedule()
    obj.status.last_schedule_time = T0
    replica = Scheduler(cluster, obj)
    back = T0 + timedelta(minutes=42, seconds=3)
    decision = due_slot(obj, back)
    assert decision.outcome == SlotOutcome.START
    assert decision.slot == T0 + timedelta(minutes=42)
    assert decision.missed == 41
    replica.tick(back)
    replica.tick(back + timedelta(seconds=20))
    assert list(cluster.runs) == [run_name_for_slot("report", T0 + timedelta(minutes=42))]


def test_a_missed_slot_older_than_the_starting_deadline_is_skipped_and_the_next_one_runs() -> None:
    cluster = FakeCluster()
    obj = schedule(cron="0 * * * *", startingDeadlineSeconds=120)
    obj.status.last_schedule_time = T0
    replica = Scheduler(cluster, obj)
    late = T0 + timedelta(hours=3, minutes=5)
    decision = due_slot(obj, late)
    assert decision.outcome == SlotOutcome.MISSED_DEADLINE
    assert decision.slot == T0 + timedelta(hours=3)
    assert decision.missed == 3
    assert decision.next_slot == T0 + timedelta(hours=4)
    replica.tick(late)
    assert cluster.runs == {}
    replica.tick(T0 + timedelta(hours=4, seconds=30))
    assert list(cluster.runs) == [run_name_for_slot("report", T0 + timedelta(hours=4))]


def test_a_missed_slot_within_the_starting_deadline_still_runs() -> None:
    obj = schedule(cron="0 * * * *", startingDeadlineSeconds=600)
    obj.status.last_schedule_time = T0
    decision = due_slot(obj, T0 + timedelta(hours=1, minutes=9))
    assert decision.outcome == SlotOutcome.START
    assert decision.slot == T0 + timedelta(hours=1)


def test_a_year_of_downtime_is_reported_as_too_many_missed_without_walking_every_slot() -> None:
    obj = schedule()
    obj.status.last_schedule_time = T0
    decision = due_slot(obj, T0 + timedelta(days=365, seconds=1))
    assert decision.outcome == SlotOutcome.START
    assert decision.too_many_missed
    assert decision.missed == MAX_MISSED_COUNTED
    assert "more than 100" in decision.message


def test_a_suspended_schedule_starts_nothing_but_still_knows_its_next_slot() -> None:
    obj = schedule(suspend=True)
    decision = due_slot(obj, T0 + timedelta(minutes=5, seconds=1))
    assert decision.outcome == SlotOutcome.SUSPENDED
    assert decision.slot is None
    assert decision.next_slot == T0 + timedelta(minutes=6)


def test_a_signals_only_schedule_has_no_slots() -> None:
    body = schedule().model_dump(by_alias=True, exclude_none=True)
    del body["spec"]["cron"]
    body["spec"]["signals"] = [{"name": "hot", "type": "com.example.hot"}]
    decision = due_slot(AgentSchedule.model_validate(body), T0 + timedelta(hours=1))
    assert decision.outcome == SlotOutcome.NO_CRON
    assert decision.requeue_after(T0) is None


def test_requeue_delay_is_the_time_to_the_next_slot() -> None:
    obj = schedule(cron="*/15 * * * *")
    obj.status.last_schedule_time = T0
    now = T0 + timedelta(minutes=7, seconds=30)
    decision = due_slot(obj, now)
    assert decision.outcome == SlotOutcome.NOTHING_DUE
    assert decision.requeue_after(now) == pytest.approx(450.0)


def test_naive_now_is_refused_rather_than_read_in_the_machines_zone() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        due_slot(schedule(), datetime(2026, 3, 2, 9, 5))


def test_cron_is_read_in_the_schedules_time_zone() -> None:
    obj = schedule(cron="0 9 * * *", timeZone="America/New_York")
    obj.status.last_schedule_time = datetime(2026, 1, 4, 14, 0, tzinfo=UTC)
    decision = due_slot(obj, datetime(2026, 1, 5, 14, 0, 30, tzinfo=UTC))
    assert decision.outcome == SlotOutcome.START
    assert decision.slot == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)  # 09:00 EST


AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def _slots(cron: str, zone: str, start: datetime, count: int) -> list[datetime]:
    slots, at = [], start
    for _ in range(count):
        at = next_slot_after(cron, zone, at)
        slots.append(at)
    return slots


def test_a_daily_run_at_a_time_skipped_by_spring_dst_runs_once_right_after_the_gap() -> None:
    slots = _slots("30 2 * * *", "Europe/Amsterdam", datetime(2026, 3, 28, 12, tzinfo=AMSTERDAM), 3)
    local = [s.astimezone(AMSTERDAM) for s in slots]
    assert [(t.day, t.hour, t.minute) for t in local] == [(29, 3, 0), (30, 2, 30), (31, 2, 30)]


def test_a_daily_run_at_a_time_repeated_by_autumn_dst_runs_once() -> None:
    slots = _slots("30 2 * * *", "Europe/Amsterdam", datetime(2026, 10, 24, 12, tzinfo=AMSTERDAM), 3)
    local = [s.astimezone(AMSTERDAM) for s in slots]
    assert [(t.day, t.hour, t.minute) for t in local] == [(25, 2, 30), (26, 2, 30), (27, 2, 30)]
    assert slots[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30, still summer time


def test_an_every_half_hour_schedule_runs_through_the_repeated_autumn_hour() -> None:
    start = datetime(2026, 10, 24, 23, 50, tzinfo=UTC)  # 01:50 CEST
    slots = _slots("*/30 * * * *", "Europe/Amsterdam", start, 6)
    assert [b - a for a, b in itertools.pairwise(slots)] == [timedelta(minutes=30)] * 5


def test_the_repeated_autumn_slot_is_not_due_again_after_the_first_one_ran() -> None:
    obj = schedule(cron="30 2 * * *", timeZone="Europe/Amsterdam")
    obj.status.last_schedule_time = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    decision = due_slot(obj, datetime(2026, 10, 25, 1, 31, tzinfo=UTC))  # second 02:30 (CET) has passed
    assert decision.outcome == SlotOutcome.NOTHING_DUE
    assert decision.next_slot == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_run_names_are_valid_dns_labels_even_for_the_longest_schedule_name() -> None:
    name = run_name_for_slot("a" * 52, T0)
    assert len(name) <= 63
    assert name == "a" * 52 + f"-{int(T0.timestamp()) // 60}"
    assert run_name_for_slot("x" * 70, T0).startswith("x" * 52 + "-")
    assert not run_name_for_slot("ab-" + "c" * 49 + "-d", T0).count("--")


def test_forbid_skips_the_new_run_while_one_is_active_and_says_which() -> None:
    decision = decide_concurrency(ConcurrencyPolicy.FORBID, ["report-100"], "report-101")
    assert not decision.create
    assert decision.delete == ()
    assert "report-100" in decision.message
    assert "Forbid" in decision.message


def test_forbid_starts_the_run_when_nothing_is_active() -> None:
    assert decide_concurrency(ConcurrencyPolicy.FORBID, [], "report-101").create


def test_replace_cancels_the_active_runs_then_starts_the_new_one() -> None:
    decision = decide_concurrency(ConcurrencyPolicy.REPLACE, ["report-99", "report-100"], "report-101")
    assert decision.create
    assert decision.delete == ("report-99", "report-100")


def test_allow_starts_alongside_active_runs() -> None:
    decision = decide_concurrency(ConcurrencyPolicy.ALLOW, ["report-100"], "report-101")
    assert decision.create
    assert decision.delete == ()


def test_a_run_that_already_exists_is_neither_recreated_nor_replaced() -> None:
    decision = decide_concurrency(ConcurrencyPolicy.REPLACE, ["report-101"], "report-101")
    assert not decision.create
    assert decision.delete == ()


def test_a_cron_that_never_fires_is_reported_not_raised() -> None:
    decision = due_slot(schedule(cron="0 0 31 2 *"), T0 + timedelta(minutes=1))
    assert decision.outcome == SlotOutcome.INVALID
    assert "0 0 31 2 *" in decision.message
    assert decision.requeue_after(T0) is None


def test_an_unknown_time_zone_is_reported_not_raised() -> None:
    obj = schedule()
    obj.spec.time_zone = "Mars/Olympus_Mons"  # the API refuses this; an old object might still hold it
    decision = due_slot(obj, T0 + timedelta(minutes=1))
    assert decision.outcome == SlotOutcome.INVALID
    assert "Mars/Olympus_Mons" in decision.message


def test_a_step_exactly_at_the_slot_time_starts_that_slot() -> None:
    decision = due_slot(schedule(), T0 + timedelta(minutes=1))
    assert decision.outcome == SlotOutcome.START
    assert decision.slot == T0 + timedelta(minutes=1)
    assert decision.next_slot == T0 + timedelta(minutes=2)
