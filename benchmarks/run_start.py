"""Run start latency: an AgentRun's creation until its Pod exists, against a plain Job's until its Pod exists.

Measured two ways in the same run, interleaved, from the client's clock right before the object is
created until the ADDED event of its Pod arrives on a watch of the namespace's Pods (one stream for both
kinds, so neither pays for polling):

- from `kubectl create`, the issue's measure and what a user waits for: the testbed's kubectl, one
  process per object as admin, the object's JSON on its stdin, discovery from a warm cache. kubectl's
  own start and request (~50-60 ms here) are the same for both kinds, so they dilute the difference;
- from the create request alone: the same object POSTed as admin over HTTP on a kept-alive connection
  (what kubectl sends, without its process). This is the operator's own cost undiluted, the stricter
  number, printed beside the first so the dilution is never hidden.

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
Each round creates a Job and a run by request alone, then a Job and a run by kubectl; kinds alternate in
ABBA order so drift on a busy machine hits both; the first AGENCY_BENCH_WARMUP (3) rounds are not
counted. Runs and Jobs stay (Pods stay Pending: the testbed has no kubelet), so the operator's periodic
resync of unfinished runs grows over the benchmark, as it would with that many runs in flight.

Where the time goes (by request alone): the create's answer as this client saw it (the same request for
both kinds), and the mean of each stage of those runs' starts from the operator's own
`agency_run_start_stage_seconds` (queued, admission, identity, process; read from its /metrics before each
such run is created and once it counts the run's start, outside the timed span). The rest is the run's
watch event reaching the operator and what it does between the stages (the Pod's ADDED event reaches
this benchmark while the operator's create of it is still answering, inside `process`); for a Job, the
rest is all of its controller's work.

Knobs: AGENCY_BENCH_RUNS (200 of each kind, each way), AGENCY_BENCH_GAP_MS, AGENCY_BENCH_WARMUP.
Target (issue "Prove it"): AgentRun/Job ratio <= 1.5 at p99, from `kubectl create`.
"""

from __future__ import annotations

import json
import statistics
import time

from prometheus_client.parser import text_string_to_metric_families

from agency_operator.metrics import START_STAGES
from agency_testbed.fixtures_operator import OperatorProcess, run
from agency_testbed.procs import wait_until
from benchmarks.testbed_bench import (
    BenchTestbed,
    JsonDict,
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
#: (sum|count, stage) -> value of the operator's run-start histogram.
Totals = dict[tuple[str, str], float]
PATHS = {
    "job": f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
    "run": f"/apis/agency.dev/v1alpha1/namespaces/{NAMESPACE}/agentruns",
}


def stage_totals(metrics: str) -> Totals:
    """(sum|count, stage) -> value of the operator's run-start histogram in its /metrics text."""
    return {
        (sample.name.removeprefix(f"{STAGE_METRIC}_"), sample.labels["stage"]): sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == STAGE_METRIC
        for sample in family.samples
        if sample.name in (f"{STAGE_METRIC}_sum", f"{STAGE_METRIC}_count")
    }


def stage_means(before: Totals, after: Totals) -> dict[str, float]:
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
    print("\nwhere it goes, by request alone, means (ms)      Job  AgentRun")
    print(f"  {'the create answered (this client)':<44} {create['job']:>5.1f} {create['run']:>9.1f}")
    for stage, ms in means.items():
        print(f"  {'operator stage: ' + stage:<44} {'':>5} {ms:>9.1f}")
    rest = {kind: mean[kind] - create[kind] - (sum(means.values()) if kind == "run" else 0) for kind in mean}
    print(f"  {'the rest (a Job: its controller, all of it)':<44} {rest['job']:>5.1f} {rest['run']:>9.1f}")
    print(f"  {'creation to Pod ADDED':<44} {mean['job']:>5.1f} {mean['run']:>9.1f}")


#: The two ways an object is created: the create request alone, and `kubectl create` (see module doc).
WAYS = ("request", "kubectl")


def create(bench: BenchTestbed, way: str, kind: str, body: JsonDict) -> float:
    """Create `body` the given way; when the create answered (client clock; for kubectl, when it exited)."""
    if way == "kubectl":
        bench.testbed.kubectl("create", "-f", "-", stdin=json.dumps(body))
    else:
        bench.post(PATHS[kind], body)
    return time.time()


def start_observed(operator: OperatorProcess, ahead: Totals) -> Totals:
    """The operator's stage totals once it has observed the start of the run created after `ahead` was
    read (it observes a start as it sets the run's startTime, a moment after the Pod's create answered)."""
    latest = ahead

    def counted() -> bool:
        nonlocal latest
        latest = stage_totals(operator.metrics())
        return latest.get(("count", "process"), 0.0) > ahead.get(("count", "process"), 0.0)

    wait_until(counted, POD_TIMEOUT, "the operator's metrics to count the run's start")
    return latest


def ratios(latencies: dict[str, list[float]]) -> dict[int, float]:
    """AgentRun/Job at p50, p90, p99 and max."""
    return {p: percentile(latencies["run"], p) / percentile(latencies["job"], p) for p in (50, 90, 99, 100)}


def main() -> None:
    runs, warmup = knob("AGENCY_BENCH_RUNS", 200), knob("AGENCY_BENCH_WARMUP", 3)
    gap = knob("AGENCY_BENCH_GAP_MS", 250) / 1000
    latencies: dict[str, dict[str, list[float]]] = {way: {"job": [], "run": []} for way in WAYS}
    answered: dict[str, list[float]] = {"job": [], "run": []}  # the create request's own answer
    with bench_testbed("agency-bench-run-start-") as bench:
        bench.namespace(NAMESPACE)
        operator = bench.operator(NAMESPACE, executor="pod")
        observed: Totals = {}  # the stage totals of the runs created by request
        pods_path = f"/api/v1/namespaces/{NAMESPACE}/pods"
        with WatchRecorder(bench.testbed, pods_path, label_key(RUN_LABEL, JOB_LABEL)) as pods, steady_clock():
            for i in range(warmup + runs):
                for way in WAYS:
                    for kind in ("job", "run") if i % 2 == 0 else ("run", "job"):
                        name = f"{kind}-{way[0]}{i:04d}"
                        body = job(NAMESPACE, name) if kind == "job" else run(NAMESPACE, name)
                        staged = way == "request" and kind == "run" and i >= warmup
                        ahead = stage_totals(operator.metrics()) if staged else {}
                        started = time.time()
                        done = create(bench, way, kind, body)
                        seen = pods.wait_for(name, POD_TIMEOUT)
                        if staged:
                            for key, total in start_observed(operator, ahead).items():
                                observed[key] = observed.get(key, 0.0) + total - ahead.get(key, 0.0)
                        if i >= warmup:
                            latencies[way][kind].append((seen.at - started) * 1000)
                            if way == "request":
                                answered[kind].append((done - started) * 1000)
                        time.sleep(gap)
        means = stage_means({}, observed)

    titles = {
        "kubectl": "from `kubectl create` (a process per object, as a user runs it)",
        "request": "from the create request alone (a POST on a kept-alive connection, no kubectl)",
    }
    by_way = {way: ratios(latencies[way]) for way in WAYS}
    pace = f"{runs} of each kind each way, sequential, {gap * 1000:.0f} ms apart"
    print(f"creation to Pod ADDED on a watch, {pace}")
    for way in ("kubectl", "request"):
        print()
        print_table(
            f"{titles[way]} (ms)",
            {
                "plain Job (job controller)": latencies[way]["job"],
                "AgentRun (agency operator)": latencies[way]["run"],
            },
        )
        print(f"  {'ratio AgentRun/Job':<34} {'':>5} " + " ".join(f"{r:>9.2f}" for r in by_way[way].values()))
    print_breakdown(latencies["request"], answered, means)
    p99 = {way: {kind: percentile(latencies[way][kind], 99) for kind in ("job", "run")} for way in WAYS}
    user, alone = p99["kubectl"], p99["request"]
    print(
        f"\nsummary: from `kubectl create`, an AgentRun's Pod exists {user['run']:.0f} ms after at p99 vs "
        f"{user['job']:.0f} ms for a plain Job: ratio {by_way['kubectl'][99]:.2f} (target <= 1.5; p50 ratio "
        f"{by_way['kubectl'][50]:.2f}); from the create request alone {alone['run']:.0f} vs "
        f"{alone['job']:.0f} ms: ratio {by_way['request'][99]:.2f} (p50 ratio {by_way['request'][50]:.2f})"
    )


if __name__ == "__main__":
    main()
