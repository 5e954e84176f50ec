"""Schedule accuracy: how late an AgentSchedule's run appears after its slot, against a CronJob's Job.

Measured: for every slot of every schedule, the lag from the slot's time (a whole minute, from the name
both controllers give the object they create: `<schedule>-<minutes since the epoch>`) until the ADDED
event of the AgentRun, or of the CronJob's Job, arrives on a watch (client wall clock: on loopback the
testbed shares this machine's clock). The objects' `metadata.creationTimestamp` is printed too, but it has
one-second resolution (truncated), so it only bounds the lag to within a second.

Agency: AGENCY_BENCH_SCHEDULES (10) AgentSchedules with `cron: "* * * * *"` and `concurrencyPolicy: Allow`,
reconciled by the operator (`python -m agency_operator` with the operator's production settings) with
the pod executor: no runtime process per run (Pods stay Pending: the testbed has no kubelet), so the
machine stays quiet and nothing but the scheduling is timed. The operator reconciles each schedule again
at its next slot (operator/agency_operator/wakeups.py), with its 10 s resync as the safety net.
Baseline: as many CronJobs with `schedule: "* * * * *"` and `concurrencyPolicy: Allow` (a minute is the
finest both support), run by kube-controller-manager's cronjob controller, in the same namespace on the
same testbed at the same time.

Slots: AGENCY_BENCH_SLOTS (3) whole minutes, starting with the first one at least 10 s after every
schedule exists. Real wall-clock time (the operator's test clock is not used), so the run takes about
AGENCY_BENCH_SLOTS + 1 minutes.

Target (issue "Prove it"): AgentSchedule p99 lag <= CronJob p99 lag.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime

from agency_testbed.fixtures_operator import JsonDict
from benchmarks.testbed_bench import (
    WatchRecorder,
    bench_testbed,
    job_spec,
    knob,
    name_key,
    percentile,
    print_table,
    steady_clock,
)

NAMESPACE = "schedule-accuracy"
CRON = "* * * * *"
#: How long after a slot its object may still arrive before it is counted as missed.
LATE = 60.0


def agent_schedule(namespace: str, name: str) -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentSchedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "agentRef": {"name": "helper"},
            "cron": CRON,
            "concurrencyPolicy": "Allow",
            "input": json.dumps({"slot": "{{ scheduledTime }}"}),
        },
    }


def cron_job(namespace: str, name: str) -> JsonDict:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": CRON,
            "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": job_spec()},
        },
    }


def _slot_of(name: str) -> float:
    return int(name.rsplit("-", 1)[1]) * 60.0


def _created(obj: JsonDict) -> float:
    return datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00")).timestamp()


def main() -> None:
    count, slots = knob("AGENCY_BENCH_SCHEDULES", 10), knob("AGENCY_BENCH_SLOTS", 3)
    watched = {
        "AgentSchedule": f"/apis/agency.dev/v1alpha1/namespaces/{NAMESPACE}/agentruns",
        "CronJob": f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
    }
    lags: dict[str, list[float]] = {"CronJob": [], "AgentSchedule": []}
    created_lags: dict[str, list[float]] = {"CronJob": [], "AgentSchedule": []}
    missed: dict[str, int] = {"CronJob": 0, "AgentSchedule": 0}
    with bench_testbed("agency-bench-schedule-") as bench:
        bench.namespace(NAMESPACE)
        bench.operator(NAMESPACE, executor="pod")
        with (
            WatchRecorder(bench.testbed, watched["AgentSchedule"], name_key) as runs,
            WatchRecorder(bench.testbed, watched["CronJob"], name_key) as jobs,
            steady_clock(),
        ):
            schedules_path = f"/apis/agency.dev/v1alpha1/namespaces/{NAMESPACE}/agentschedules"
            for i in range(count):
                bench.post(schedules_path, agent_schedule(NAMESPACE, f"agent-{i:02d}"))
                bench.post(
                    f"/apis/batch/v1/namespaces/{NAMESPACE}/cronjobs", cron_job(NAMESPACE, f"cron-{i:02d}")
                )
            first = math.ceil((time.time() + 10) / 60) * 60
            wanted = [first + 60 * s for s in range(slots)]
            print(
                f"{count} AgentSchedules and {count} CronJobs on {CRON!r}; timing {slots} slot(s) from "
                f"{datetime.fromtimestamp(first).astimezone().isoformat(timespec='seconds')}",
                flush=True,
            )
            expected = {
                "AgentSchedule": [
                    f"agent-{i:02d}-{int(slot) // 60}" for i in range(count) for slot in wanted
                ],
                "CronJob": [f"cron-{i:02d}-{int(slot) // 60}" for i in range(count) for slot in wanted],
            }
            for kind, recorder in (("AgentSchedule", runs), ("CronJob", jobs)):
                for name in expected[kind]:
                    try:
                        seen = recorder.wait_for(name, max(0.0, _slot_of(name) + LATE - time.time()))
                    except TimeoutError:
                        missed[kind] += 1
                        continue
                    lags[kind].append(seen.at - _slot_of(name))
                    created_lags[kind].append(_created(seen.obj) - _slot_of(name))

    if not (lags["CronJob"] and lags["AgentSchedule"]):
        print(f"no lag to compare: missed (no object within {LATE:.0f} s of its slot): {missed}")
        return
    print_table(
        f"slot time to the object's ADDED event on a watch, {count} schedules x {slots} slots (s)",
        {"CronJob -> Job": lags["CronJob"], "AgentSchedule -> AgentRun": lags["AgentSchedule"]},
        digits=2,
    )
    print_table(
        "slot time to metadata.creationTimestamp (1 s resolution, truncated) (s)",
        {
            "CronJob -> Job": created_lags["CronJob"],
            "AgentSchedule -> AgentRun": created_lags["AgentSchedule"],
        },
        digits=2,
    )
    if any(missed.values()):
        print(f"  missed (no object within {LATE:.0f} s of its slot): {missed}")
    ours, theirs = percentile(lags["AgentSchedule"], 99), percentile(lags["CronJob"], 99)
    print(
        f"\nsummary: AgentSchedule runs appear {ours:.2f} s after their slot at p99 vs {theirs:.2f} s for "
        f"CronJob's Jobs: ratio {ours / theirs:.2f} (target: AgentSchedule p99 <= CronJob p99)"
    )


if __name__ == "__main__":
    main()
