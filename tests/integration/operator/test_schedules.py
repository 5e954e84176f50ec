"""AgentSchedules run by the real operator process: one run per cron slot, concurrency policies.

The operator's schedules read "now" from a file (`AGENCY_TEST_CLOCK_FILE`), which each test moves forward
a minute at a time, so a `* * * * *` schedule is walked through its slots without waiting for them. Each
step is awaited through the schedule's own status (`lastScheduleTime`), never by sleeping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    JsonDict,
    OperatorFactory,
    OperatorProcess,
    agent,
    api_get,
    api_list,
    apply,
    policy,
    run_path,
    secret,
    wait_for,
)


def _schedule(namespace: str, policy_name: str, ask: JsonDict, **spec: Any) -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentSchedule",
        "metadata": {"name": "every-minute", "namespace": namespace},
        "spec": {
            "agentRef": {"name": "helper"},
            "cron": "* * * * *",
            "startingDeadlineSeconds": 120,
            "concurrencyPolicy": policy_name,
            "input": json.dumps(ask),
            **spec,
        },
    }


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _run_name(slot: datetime) -> str:
    return f"every-minute-{int(slot.timestamp()) // 60}"


class Clock:
    """The instant the operator's schedules take as now; starts an hour ahead, on a whole minute."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.first_slot = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=1)
        self.set(self.first_slot + timedelta(seconds=30))

    def set(self, moment: datetime) -> None:
        self.path.write_text(_rfc3339(moment))


def _start(operator: OperatorFactory, clock: Clock) -> OperatorProcess:
    return operator.start(executor="local", env={**STUB_ENV, "AGENCY_TEST_CLOCK_FILE": str(clock.path)})


def _schedule_status(testbed: Testbed, namespace: str) -> JsonDict:
    body = api_get(testbed, f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agentschedules/every-minute")
    status: JsonDict = (body or {}).get("status") or {}
    return status


def _wait_scheduled(testbed: Testbed, namespace: str, slot: datetime) -> None:
    wait_for(
        lambda: _schedule_status(testbed, namespace).get("lastScheduleTime") == _rfc3339(slot),
        60,
        f"the schedule to handle the slot at {slot}",
        lambda: f" (status now: {_schedule_status(testbed, namespace)})",
    )


def _run_names(testbed: Testbed, namespace: str) -> list[str]:
    runs = api_list(testbed, run_path(namespace), "agency.dev/schedule=every-minute")
    return sorted(r["metadata"]["name"] for r in runs if not r["metadata"].get("deletionTimestamp"))


def _event_reasons(testbed: Testbed, namespace: str) -> list[str]:
    events = api_list(testbed, f"/api/v1/namespaces/{namespace}/events")
    return [e["reason"] for e in events if e["involvedObject"]["name"] == "every-minute"]


def _setup(kubectl: Kubectl, namespace: str, schedule: JsonDict) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), schedule)


def test_every_minute_schedule_starts_one_run_per_slot_across_an_operator_restart_and_no_burst(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    clock = Clock(tmp_path / "clock")
    _setup(kubectl, namespace, _schedule(namespace, "Allow", {"phase": "Succeeded"}))
    first = _start(operator, clock)
    slot = clock.first_slot
    _wait_scheduled(testbed, namespace, slot)
    assert _run_names(testbed, namespace) == [_run_name(slot)]

    first.kill()
    second = _start(operator, clock)
    wait_for(
        lambda: second.reconciles("AgentSchedule") >= 3,
        30,
        "the restarted operator to look at the schedule a few times",
    )
    assert _run_names(testbed, namespace) == [_run_name(slot)], "the same slot started nothing new"

    clock.set(slot + timedelta(seconds=90))
    _wait_scheduled(testbed, namespace, slot + timedelta(minutes=1))
    assert _run_names(testbed, namespace) == [_run_name(slot), _run_name(slot + timedelta(minutes=1))]

    # Down for four slots: only the latest one runs (it is within startingDeadlineSeconds), no burst.
    clock.set(slot + timedelta(minutes=5, seconds=30))
    _wait_scheduled(testbed, namespace, slot + timedelta(minutes=5))
    assert _run_names(testbed, namespace) == sorted(_run_name(slot + timedelta(minutes=m)) for m in (0, 1, 5))
    assert "MissedSlots" in _event_reasons(testbed, namespace)


def test_forbid_skips_a_slot_while_the_previous_run_still_runs(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    clock = Clock(tmp_path / "clock")
    _setup(kubectl, namespace, _schedule(namespace, "Forbid", {"wait": True}))
    _start(operator, clock)
    slot = clock.first_slot
    _wait_scheduled(testbed, namespace, slot)

    clock.set(slot + timedelta(seconds=90))
    _wait_scheduled(testbed, namespace, slot + timedelta(minutes=1))
    assert _run_names(testbed, namespace) == [_run_name(slot)]
    assert "RunSkipped" in _event_reasons(testbed, namespace)
    assert _schedule_status(testbed, namespace)["active"] == [{"name": _run_name(slot)}]


def test_replace_cancels_the_running_run_for_the_new_slot(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    clock = Clock(tmp_path / "clock")
    _setup(kubectl, namespace, _schedule(namespace, "Replace", {"wait": True}))
    _start(operator, clock)
    slot = clock.first_slot
    _wait_scheduled(testbed, namespace, slot)

    clock.set(slot + timedelta(seconds=90))
    _wait_scheduled(testbed, namespace, slot + timedelta(minutes=1))
    wait_for(
        lambda: api_get(testbed, run_path(namespace, _run_name(slot))) is None,
        30,
        "the replaced run to be gone",
    )
    assert _run_names(testbed, namespace) == [_run_name(slot + timedelta(minutes=1))]
    assert "RunsReplaced" in _event_reasons(testbed, namespace)


def test_schedule_with_an_invalid_cron_says_so_in_its_ready_condition(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    clock = Clock(tmp_path / "clock")
    _setup(kubectl, namespace, _schedule(namespace, "Allow", {}, cron="0 0 31 2 *"))
    _start(operator, clock)

    def ready() -> JsonDict | None:
        for cond in _schedule_status(testbed, namespace).get("conditions", []):
            if cond["type"] == "Ready":
                found: JsonDict = cond
                return found
        return None

    wait_for(ready, 30, "the schedule's Ready condition")
    cond = ready()
    assert cond is not None
    assert cond["status"] == "False"
    assert "spec.cron" in cond["message"]
    assert _run_names(testbed, namespace) == []


def test_an_operator_killed_between_starting_a_slots_run_and_recording_it_starts_no_second_run(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    clock = Clock(tmp_path / "clock")
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace))
    env = {
        **STUB_ENV,
        "AGENCY_TEST_CLOCK_FILE": str(clock.path),
        "AGENCY_TEST_CRASH_AFTER": "schedule-run-created",
    }
    first = operator.start(executor="local", env=env)
    apply(kubectl, _schedule(namespace, "Allow", {"phase": "Succeeded"}))
    slot = clock.first_slot
    wait_for(lambda: not first.alive(), 60, "the operator to die right after creating the slot's run")
    assert _run_names(testbed, namespace) == [_run_name(slot)]
    assert "lastScheduleTime" not in _schedule_status(testbed, namespace), "it died before recording it"

    _start(operator, clock)
    _wait_scheduled(testbed, namespace, slot)
    assert _run_names(testbed, namespace) == [_run_name(slot)]


def test_two_operator_replicas_start_one_run_per_slot(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    clock = Clock(tmp_path / "clock")
    _setup(kubectl, namespace, _schedule(namespace, "Allow", {"phase": "Succeeded"}))
    replicas = [_start(operator, clock), _start(operator, clock)]
    slot = clock.first_slot
    _wait_scheduled(testbed, namespace, slot)
    clock.set(slot + timedelta(seconds=90))
    _wait_scheduled(testbed, namespace, slot + timedelta(minutes=1))
    wait_for(
        lambda: all(r.reconciles("AgentSchedule") >= 3 for r in replicas),
        30,
        "both replicas to have stepped the schedule",
    )
    assert _run_names(testbed, namespace) == [_run_name(slot), _run_name(slot + timedelta(minutes=1))]
