"""A schedule's cron steps, planned against the runs it has: concurrency, history and status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agency_operator.triggers.cron import run_name_for_slot
from agency_operator.triggers.scheduler import plan_cron_step
from agency_runtime.api.schedule import AgentSchedule

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def schedule(**spec: Any) -> AgentSchedule:
    obj = AgentSchedule.model_validate(
        {
            "metadata": {"name": "report", "namespace": "ops", "uid": "uid-report", "creationTimestamp": T0},
            "spec": {"agentRef": {"name": "reporter"}, "cron": "*/5 * * * *", **spec},
        }
    )
    obj.status.last_schedule_time = T0
    return obj


def run(slot_minutes: int, phase: str | None, finished_minutes: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if finished_minutes is not None:
        status["completionTime"] = (T0 + timedelta(minutes=finished_minutes)).isoformat()
    name = run_name_for_slot("report", T0 + timedelta(minutes=slot_minutes))
    return {"metadata": {"name": name, "labels": {"agency.dev/schedule": "report"}}, "status": status}


DUE = T0 + timedelta(minutes=5, seconds=2)
NEW = run_name_for_slot("report", T0 + timedelta(minutes=5))


def test_a_due_slot_plans_its_run_and_records_the_slot_and_the_next_one() -> None:
    plan = plan_cron_step(schedule(), [], DUE)
    assert plan.create is not None
    assert plan.create["metadata"]["name"] == NEW
    assert plan.status["lastScheduleTime"] == "2026-03-02T09:05:00Z"
    assert plan.status["nextScheduleTime"] == "2026-03-02T09:10:00Z"
    assert plan.status["active"] == [{"name": NEW}]
    assert plan.requeue_after == 298.0
    assert [e.reason for e in plan.events] == ["RunStarted"]


def test_forbid_skips_the_slot_while_a_run_is_active_and_says_so_in_an_event() -> None:
    plan = plan_cron_step(schedule(), [run(0, "Running")], DUE)
    assert plan.create is None
    assert plan.cancel == ()
    (event,) = plan.events
    assert event.reason == "RunSkipped"
    assert run(0, "Running")["metadata"]["name"] in event.message
    assert plan.status["lastScheduleTime"] == "2026-03-02T09:05:00Z"  # skipped for good, not run late


def test_replace_cancels_the_active_run_and_creates_the_new_one() -> None:
    old = run(0, "WaitingForApproval")
    plan = plan_cron_step(schedule(concurrencyPolicy="Replace"), [old], DUE)
    assert plan.cancel == (old["metadata"]["name"],)
    assert plan.create is not None
    assert plan.status["active"] == [{"name": NEW}]


def test_a_run_already_created_for_the_slot_is_not_created_again() -> None:
    plan = plan_cron_step(schedule(), [run(5, None)], DUE)
    assert plan.create is None
    assert plan.events == ()
    assert plan.status["lastScheduleTime"] == "2026-03-02T09:05:00Z"


def test_finished_runs_beyond_the_history_limits_are_pruned_and_the_last_success_recorded() -> None:
    runs = [
        run(-20, "Succeeded", -19),
        run(-15, "Succeeded", -14),
        run(-10, "Failed", -9),
        run(-5, "Failed", -4),
    ]
    plan = plan_cron_step(schedule(successfulRunsHistoryLimit=1, failedRunsHistoryLimit=1), runs, DUE)
    assert plan.prune == (runs[0]["metadata"]["name"], runs[2]["metadata"]["name"])
    assert plan.status["lastSuccessfulTime"] == "2026-03-02T08:46:00Z"


def test_nothing_due_still_refreshes_status_and_sleeps_until_the_next_slot() -> None:
    plan = plan_cron_step(schedule(), [run(0, "Running")], T0 + timedelta(minutes=2))
    assert plan.create is None
    assert "lastScheduleTime" not in plan.status
    assert plan.status["active"] == [{"name": run(0, "Running")["metadata"]["name"]}]
    assert plan.requeue_after == 180.0
