"""Cron steps carried out against the real API server with a fake clock: one run per slot across a restart
and two replicas, Forbid and Replace with real runs, status as the only memory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agency_operator.triggers.cron import run_name_for_slot
from agency_operator.triggers.scheduler import CronPlan, plan_cron_step
from agency_runtime.api.schedule import AgentSchedule
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.procs import wait_until

pytestmark = pytest.mark.usefixtures("agency_crds")

GROUP = "/apis/agency.dev/v1alpha1"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _wait_for_storage(api: httpx.Client, namespace: str) -> None:
    """Right after a CRD is Established the API server may answer 429 "storage is (re)initializing" for a
    moment; the operator's client retries that, this test client waits for it to pass once."""
    for plural in ("agentruns", "agentschedules"):
        url = f"{GROUP}/namespaces/{namespace}/{plural}"

        def served(url: str = url) -> bool:
            return api.get(url).status_code == 200

        wait_until(served, 30, f"{plural} storage to be ready")


class Replica:
    """An operator replica's cron handler with no memory: reads the schedule and its runs, plans, acts."""

    def __init__(self, api: httpx.Client, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        _wait_for_storage(api, namespace)

    def schedule(self) -> AgentSchedule:
        response = self.api.get(f"{GROUP}/namespaces/{self.namespace}/agentschedules/{self.name}")
        response.raise_for_status()
        return AgentSchedule.from_k8s(response.json())

    def runs(self) -> list[dict[str, Any]]:
        response = self.api.get(
            f"{GROUP}/namespaces/{self.namespace}/agentruns",
            params={"labelSelector": f"agency.dev/schedule={self.name}"},
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def step(self, now: datetime, *, crash_before_status: bool = False) -> CronPlan:
        plan = plan_cron_step(self.schedule(), self.runs(), now)
        runs = f"{GROUP}/namespaces/{self.namespace}/agentruns"
        for name in plan.cancel:
            assert self.api.delete(f"{runs}/{name}").status_code in (200, 202, 404)
        if plan.create is not None:
            created = self.api.post(runs, json=plan.create)
            assert created.status_code in (201, 409), created.text
        for name in plan.prune:
            assert self.api.delete(f"{runs}/{name}").status_code in (200, 202, 404)
        if not crash_before_status:
            patched = self.api.patch(
                f"{GROUP}/namespaces/{self.namespace}/agentschedules/{self.name}/status",
                content=json.dumps({"status": plan.status}),
                headers=MERGE,
            )
            assert patched.status_code == 200, patched.text
        return plan


def _schedule(kubectl: Kubectl, namespace: str, **spec: Any) -> datetime:
    body = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentSchedule",
        "metadata": {"name": "minutely"},
        "spec": {
            "agentRef": {"name": "reporter"},
            "cron": "* * * * *",
            "input": "at {{ scheduledTime }}",
            **spec,
        },
    }
    out = kubectl("apply", "-n", namespace, "-f", "-", "-o", "json", stdin=json.dumps(body)).stdout
    created = json.loads(out)["metadata"]["creationTimestamp"]
    return datetime.fromisoformat(created.replace("Z", "+00:00"))


def _names(replica: Replica) -> list[str]:
    return sorted(run["metadata"]["name"] for run in replica.runs())


def _set_phase(api: httpx.Client, namespace: str, name: str, phase: str) -> None:
    response = api.patch(
        f"{GROUP}/namespaces/{namespace}/agentruns/{name}/status",
        content=json.dumps({"status": {"phase": phase}}),
        headers=MERGE,
    )
    assert response.status_code == 200, response.text


def test_every_minute_schedule_creates_exactly_one_run_per_minute_across_a_restart_and_two_replicas(
    testbed: Testbed, kubectl: Kubectl, namespace: str
) -> None:
    created = _schedule(kubectl, namespace, concurrencyPolicy="Allow", successfulRunsHistoryLimit=10)
    start = created.replace(second=0, microsecond=0) + timedelta(minutes=1)
    with testbed.http() as api:
        first, second = Replica(api, namespace, "minutely"), Replica(api, namespace, "minutely")
        for tick in range(1, 7):  # every 20 s for two minutes after the first slot, both replicas stepping
            now = start + timedelta(seconds=20 * tick)
            first.step(now, crash_before_status=tick == 3)  # one crash between create and status
            second.step(now + timedelta(seconds=1))
        restarted = Replica(api, namespace, "minutely")  # a fresh process: only the API server's state
        for tick in range(7, 10):
            restarted.step(start + timedelta(seconds=20 * tick))
        expected = [run_name_for_slot("minutely", start + timedelta(minutes=m)) for m in range(4)]
        assert _names(restarted) == sorted(expected)
        schedule = restarted.schedule()
        assert schedule.status.last_schedule_time == start + timedelta(minutes=3)
        assert schedule.status.next_schedule_time == start + timedelta(minutes=4)


def test_after_downtime_only_the_latest_missed_slot_runs(
    testbed: Testbed, kubectl: Kubectl, namespace: str
) -> None:
    created = _schedule(kubectl, namespace)
    with testbed.http() as api:
        replica = Replica(api, namespace, "minutely")
        back = created + timedelta(minutes=30, seconds=1)
        plan = replica.step(back)
        replica.step(back + timedelta(seconds=5))
        assert plan.decision.missed == 29  # the slots between creation and the latest one
        latest = back.replace(second=0, microsecond=0)
        assert _names(replica) == [run_name_for_slot("minutely", latest)]


def test_forbid_skips_while_a_run_is_active_and_replace_cancels_it(
    testbed: Testbed, kubectl: Kubectl, namespace: str
) -> None:
    created = _schedule(kubectl, namespace)  # Forbid by default
    slot = created.replace(second=0, microsecond=0) + timedelta(minutes=1)
    with testbed.http() as api:
        replica = Replica(api, namespace, "minutely")
        replica.step(slot + timedelta(seconds=1))
        (first,) = _names(replica)
        _set_phase(api, namespace, first, "Running")
        skipped = replica.step(slot + timedelta(minutes=1, seconds=1))
        assert [e.reason for e in skipped.events] == ["RunSkipped"]
        assert _names(replica) == [first]

        kubectl("patch", "agentschedule", "minutely", "-n", namespace, "--type=merge",
                "-p", '{"spec": {"concurrencyPolicy": "Replace"}}')  # fmt: skip
        replaced = replica.step(slot + timedelta(minutes=2, seconds=1))
        assert replaced.cancel == (first,)
        assert _names(replica) == [run_name_for_slot("minutely", slot + timedelta(minutes=2))]


def test_a_slot_missed_beyond_the_starting_deadline_creates_nothing(
    testbed: Testbed, kubectl: Kubectl, namespace: str
) -> None:
    created = _schedule(kubectl, namespace, cron="0 * * * *", startingDeadlineSeconds=60)
    with testbed.http() as api:
        replica = Replica(api, namespace, "minutely")
        late = created.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2, minutes=5)
        plan = replica.step(late)
        assert [e.reason for e in plan.events] == ["MissedDeadline"]
        assert _names(replica) == []
        assert replica.schedule().status.last_schedule_time == late.replace(minute=0)


def test_runs_started_by_cron_are_valid_agentruns_with_the_slot_in_their_input(
    testbed: Testbed, kubectl: Kubectl, namespace: str
) -> None:
    created = _schedule(kubectl, namespace)
    slot = created.replace(second=0, microsecond=0) + timedelta(minutes=1)
    with testbed.http() as api:
        replica = Replica(api, namespace, "minutely")
        replica.step(slot + timedelta(seconds=3))
        (run,) = replica.runs()
    assert run["spec"]["input"] == f"at {slot.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"
    assert run["spec"]["trigger"] == {"type": "Schedule", "scheduleRef": {"name": "minutely"}}
    assert run["metadata"]["ownerReferences"][0]["name"] == "minutely"
