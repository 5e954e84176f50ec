"""Run start latency: an AgentRun's creation until its Pod exists, against a plain Job's until its Pod exists.

Measured: from the client's clock right before the POST that creates the object until the ADDED event of
its Pod arrives on a watch of the namespace's Pods (one stream for both kinds, so neither pays for
polling). Both objects are created the same way, as admin over HTTP on a kept-alive connection: what
`kubectl create` sends, without kubectl's own ~0.1 s process start, which would add the same constant to
both and flatter the ratio.

Agency: the operator (`python -m agency_operator`, pod executor, production resync of 10 s, logged in with
its ServiceAccount's token and only its ClusterRole, as in a cluster) watching the namespace. Before the Pod
it reads the run, its Agent, the namespace's AgentPolicies and the model key's Secret (admission) side by
side, then creates the run's identity (ServiceAccount, Role, RoleBinding; more bindings when the policy
grants ClusterRoles), its NetworkPolicy and its run file (a ConfigMap) side by side, then the Pod (the API
server refuses a Pod whose ServiceAccount does not exist yet): ten requests in three round trips where the
job controller makes one request. That is why the honest comparison is a ratio against Kubernetes' own
controller on the same testbed, not an absolute number.

Baseline: a plain batch/v1 Job whose Pod kube-controller-manager's job controller creates.

Pace: sequential. Each object is created only after the previous one's Pod arrived, then a pause of
AGENCY_BENCH_GAP_MS (250 ms): latency without queueing (burst behaviour is the fleet-scale benchmark's).
Kinds alternate in ABBA order so drift on a busy machine hits both; the first AGENCY_BENCH_WARMUP (3) of
each are not counted. Runs and Jobs stay (Pods stay Pending: the testbed has no kubelet), so the
operator's periodic resync of unfinished runs grows over the benchmark, as it would with that many
runs in flight.

Where the time goes: the create's answer as this client saw it (the same request for both kinds), and
the mean of each stage of the runs' starts from the operator's own `agency_run_start_stage_seconds`
(queued, admission, identity, process; read from its /metrics after the warm-up and at the end). The
rest is the run's watch event reaching the operator and what it does between the stages (the Pod's ADDED
event reaches this benchmark while the operator's create of it is still answering, inside `process`); for
a Job, the rest is all of its controller's work.

Knobs: AGENCY_BENCH_RUNS (200 of each), AGENCY_BENCH_GAP_MS, AGENCY_BENCH_WARMUP.
Target (issue "Prove it"): AgentRun/Job ratio <= 1.5 at p99.
"""

from __future__ import annotations

import statistics
import time

from prometheus_client.parser import text_string_to_metric_families

from agency_operator.metrics import START_STAGES
from agency_testbed.fixtures_operator import run
from benchmarks.testbed_bench import (
    WatchRecorder,
    bench_testbed,
    job,
    knob,
    label_key,
    percentile,
    print_table,
    steady_clock,
)

NAMESPACE = "run-start"
RUN_LABEL = "agency.dev/run"
JOB_LABEL = "batch.kubernetes.io/job-name"
POD_TIMEOUT = 60.0
STAGE_METRIC = "agency_run_start_stage_seconds"


def stage_totals(metrics: str) -> dict[tuple[str, str], float]:
    """(sum|count, stage) -> value of the operator's run-start histogram in its /metrics text."""
    return {
        (sample.name.removeprefix(f"{STAGE_METRIC}_"), sample.labels["stage"]): sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == STAGE_METRIC
        for sample in family.samples
        if sample.name in (f"{STAGE_METRIC}_sum", f"{STAGE_METRIC}_count")
    }


def stage_means(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[str, float]:
    """Mean milliseconds of each stage over the starts observed between two readings."""
    means = {}
    for stage in START_STAGES:
        count = after.get(("count", stage), 0.0) - before.get(("count", stage), 0.0)
        if count:
            means[stage] = (after[("sum", stage)] - before.get(("sum", stage), 0.0)) / count * 1000
    return means


def print_breakdown(
    latencies: dict[str, list[float]], answered: dict[str, list[float]], means: dict[str, float]
) -> None:
    """Mean milliseconds: the create's answer, the operator's stages, and what neither accounts for."""
    mean = {kind: statistics.mean(values) for kind, values in latencies.items()}
    create = {kind: statistics.mean(values) for kind, values in answered.items()}
    print("\nwhere it goes, means (ms)                       Job  AgentRun")
    print(f"  {'the create answered (this client)':<44} {create['job']:>5.1f} {create['run']:>9.1f}")
    for stage, ms in means.items():
        print(f"  {'operator stage: ' + stage:<44} {'':>5} {ms:>9.1f}")
    rest = {kind: mean[kind] - create[kind] - (sum(means.values()) if kind == "run" else 0) for kind in mean}
    print(f"  {'the rest (a Job: its controller, all of it)':<44} {rest['job']:>5.1f} {rest['run']:>9.1f}")
    print(f"  {'creation to Pod ADDED':<44} {mean['job']:>5.1f} {mean['run']:>9.1f}")


def main() -> None:
    runs, warmup = knob("AGENCY_BENCH_RUNS", 200), knob("AGENCY_BENCH_WARMUP", 3)
    gap = knob("AGENCY_BENCH_GAP_MS", 250) / 1000
    latencies: dict[str, list[float]] = {"job": [], "run": []}
    answered: dict[str, list[float]] = {"job": [], "run": []}  # the create's own answer, client side
    paths = {
        "job": f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
        "run": f"/apis/agency.dev/v1alpha1/namespaces/{NAMESPACE}/agentruns",
    }
    with bench_testbed("agency-bench-run-start-") as bench:
        bench.namespace(NAMESPACE)
        operator = bench.operator(NAMESPACE, executor="pod")
        before: dict[tuple[str, str], float] = {}
        pods_path = f"/api/v1/namespaces/{NAMESPACE}/pods"
        with WatchRecorder(bench.testbed, pods_path, label_key(RUN_LABEL, JOB_LABEL)) as pods, steady_clock():
            for i in range(warmup + runs):
                if i == warmup:
                    before = stage_totals(operator.metrics())
                for kind in ("job", "run") if i % 2 == 0 else ("run", "job"):
                    name = f"{kind}-{i:04d}"
                    body = job(NAMESPACE, name) if kind == "job" else run(NAMESPACE, name)
                    started = time.time()
                    bench.post(paths[kind], body)
                    posted = time.time()
                    seen = pods.wait_for(name, POD_TIMEOUT)
                    if i >= warmup:
                        latencies[kind].append((seen.at - started) * 1000)
                        answered[kind].append((posted - started) * 1000)
                    time.sleep(gap)
            means = stage_means(before, stage_totals(operator.metrics()))

    print_table(
        f"creation to Pod ADDED on a watch, {runs} of each, sequential, {gap * 1000:.0f} ms apart (ms)",
        {
            "plain Job (job controller)": latencies["job"],
            "AgentRun (agency operator)": latencies["run"],
        },
    )
    ratios = {p: percentile(latencies["run"], p) / percentile(latencies["job"], p) for p in (50, 90, 99, 100)}
    print(f"  {'ratio AgentRun/Job':<34} {'':>5} " + " ".join(f"{r:>9.2f}" for r in ratios.values()))
    print_breakdown(latencies, answered, means)
    print(
        f"\nsummary: an AgentRun's Pod exists {percentile(latencies['run'], 99):.0f} ms after creation at "
        f"p99 vs {percentile(latencies['job'], 99):.0f} ms for a plain Job: ratio {ratios[99]:.2f} "
        f"(target <= 1.5; p50 ratio {ratios[50]:.2f})"
    )


if __name__ == "__main__":
    main()
