"""Fleet scale: 1,000 Agents and 5,000 AgentRuns created at once, against 5,000 Jobs on the same testbed.

What it measures, on one testbed (etcd, kube-apiserver, kube-controller-manager; no kubelet, so Pods stay
Pending), in one process:

1. The fleet: the operator (`python -m agency_operator`, the `pod` executor, its default 10 s resync and
   64 reconcile threads) watching 10 namespaces `fleet-0..9`, each with the model Secret and a default
   AgentPolicy. Agent `i` lives in namespace `fleet-(i mod 10)`; run `j` runs Agent `j mod 1000` (so 5
   runs per Agent, 100 Agents and 500 runs per namespace). All Agents, then all runs, go to a pool of 16
   threads (httpx, as the testbed's admin), so creating them is not what limits the result; creation
   time is shown apart.
2. Baseline, once the operator is stopped: 5,000 Jobs created at once in namespace `bench-jobs`; the time
   until kube-controller-manager has created every Job's Pod. The controller runs with its defaults,
   among them a client rate limit (`--kube-api-qps=20` per controller), as in a real cluster.

A run counts as reconciled when its `status.startTime` is set: `runs.py` writes it only after the
operator has admitted the run (Agent, AgentPolicy, model Secret read), created its identity
(ServiceAccount, Role, RoleBinding), its NetworkPolicy, its run file ConfigMap and its Pod, in the same
status patch that sets Admitted, CredentialsReady and IdentityReady to True (phase Pending, Ready=False
`Starting`, as its Pod is Pending). An Agent counts when its Ready condition is True. Both are seen
through watches opened before the first create; every Pod is checked to exist at the end.

Also printed: the operator's peak memory (VmRSS of its process and any children, sampled every 0.25 s,
and the kernel's VmHWM), and the API requests per run from kube-apiserver's `apiserver_request_total`
(read at /metrics before and after). The operator logs in as in a cluster, with its ServiceAccount's
token and only its ClusterRole (`operator_login.py`); this benchmark logs in as the testbed's admin. The
metric has no user label, so the benchmark's own requests (its creates; its watches stay open
through the window) are subtracted from the counts, as is the background measured over an idle window
before the operator starts (kube-apiserver's own and kube-controller-manager's requests).

Targets (issue "Prove it"): all reconciled within 2 minutes, RSS under 300 MB, requests per run explained.
Scale: AGENCY_BENCH_AGENTS, AGENCY_BENCH_RUNS, AGENCY_BENCH_NAMESPACES, AGENCY_BENCH_JOBS (default: the
number of runs), AGENCY_BENCH_TIMEOUT (seconds per phase, default 900).

    PYTHONPATH=tests:. .venv/bin/python -c 'from benchmarks import fleet_scale; fleet_scale.main()'
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agency_testbed import fixtures_operator as objects
from agency_testbed.cluster import Testbed
from agency_testbed.procs import log_tail, wait_until
from benchmarks.testbed_bench import BenchTestbed, WatchRecorder, bench_testbed, knob, percentile
from benchmarks.testbed_bench import job as bench_job

JsonDict = dict[str, Any]
Key = tuple[str, str, str]  # verb, resource, subresource
THREADS = 16
JOBS_NAMESPACE = "bench-jobs"
BACKGROUND_SECONDS = 10.0
AGENCY = "/apis/agency.dev/v1alpha1"


@dataclass(frozen=True)
class Scale:
    agents: int
    runs: int
    namespaces: int
    jobs: int
    timeout: float

    @classmethod
    def from_env(cls) -> Scale:
        runs = knob("AGENCY_BENCH_RUNS", 5000)
        return cls(
            agents=knob("AGENCY_BENCH_AGENTS", 1000),
            runs=runs,
            namespaces=knob("AGENCY_BENCH_NAMESPACES", 10),
            jobs=knob("AGENCY_BENCH_JOBS", runs),
            timeout=float(knob("AGENCY_BENCH_TIMEOUT", 900)),
        )

    def namespace(self, agent: int) -> str:
        return f"fleet-{agent % self.namespaces}"


# ----- the objects --------------------------------------------------------------------------------------
def fleet_agents(scale: Scale) -> list[JsonDict]:
    return [objects.agent(scale.namespace(i), f"agent-{i:04d}") for i in range(scale.agents)]


def fleet_runs(scale: Scale) -> list[JsonDict]:
    """Run j runs Agent j mod agents, in that Agent's namespace."""
    found = []
    for j in range(scale.runs):
        agent = j % scale.agents
        found.append(objects.run(scale.namespace(agent), f"run-{j:05d}", f"agent-{agent:04d}", {"n": j}))
    return found


def job(index: int) -> JsonDict:
    return bench_job(JOBS_NAMESPACE, f"job-{index:05d}")


_COLLECTIONS = {"Agent": "agents", "AgentRun": "agentruns", "Job": "jobs"}


def collection(body: JsonDict) -> str:
    ns, kind = body["metadata"]["namespace"], body["kind"]
    group = "/apis/batch/v1" if kind == "Job" else AGENCY
    return f"{group}/namespaces/{ns}/{_COLLECTIONS[kind]}"


def object_key(obj: JsonDict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


class Creator:
    """Creates objects as admin from a pool of threads; remembers when each create was answered."""

    def __init__(self, testbed: Testbed) -> None:
        self.http = testbed.http(timeout=120)  # thread-safe; its pool keeps a connection per thread
        self.done: dict[str, float] = {}

    def _create(self, body: JsonDict) -> None:
        answer = self.http.post(collection(body), json=body)
        if answer.status_code != 201:
            raise RuntimeError(f"create {body['kind']} {object_key(body)}: {answer.text}")
        self.done[object_key(body)] = time.time()

    def create_all(self, bodies: Iterable[JsonDict]) -> float:
        """Create every object, in order, THREADS at a time; the seconds it took."""
        started = time.time()
        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(self._create, body) for body in bodies]:
                future.result()
        return time.time() - started

    def close(self) -> None:
        self.http.close()


# What is timed: each key is returned once the object is there (None until then).
def reconciled_run(run: JsonDict) -> str | None:
    return object_key(run) if (run.get("status") or {}).get("startTime") else None


def ready_agent(agent: JsonDict) -> str | None:
    ready = objects.condition(agent.get("status") or {}, "Ready")
    return object_key(agent) if ready is not None and ready["status"] == "True" else None


def job_pod(pod: JsonDict) -> str | None:
    return object_key(pod) if "job-name" in (pod["metadata"].get("labels") or {}) else None


def last(recorder: WatchRecorder, since: float) -> float:
    return max(seen.at for seen in recorder.seen.values()) - since


# ----- the operator's memory ----------------------------------------------------------------------------
def _status_kb(pid: int, name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue
    return pids


@dataclass
class MemorySampler:
    """Samples the VmRSS of a process and its children every 0.25 s and keeps the peak of the sum."""

    pid: int
    peak_kb: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._loop, daemon=True, name="rss").start()

    def _loop(self) -> None:
        while not self.stopped.wait(0.25):
            self.peak_kb = max(self.peak_kb, sum(_status_kb(p, "VmRSS") for p in process_tree(self.pid)))

    def high_water_kb(self) -> int:
        """The kernel's own peak RSS of the process (VmHWM)."""
        return _status_kb(self.pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


# ----- API requests -------------------------------------------------------------------------------------
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_counts(testbed: Testbed) -> tuple[Counter[Key], Counter[Key]]:
    """`apiserver_request_total` by (verb, resource, subresource): all, and those answered >= 400."""
    with testbed.http(timeout=30) as http:
        text = http.get("/metrics").raise_for_status().text
    total: Counter[Key] = Counter()
    failed: Counter[Key] = Counter()
    for sample in _SAMPLE.finditer(text):
        labels = dict(_LABEL.findall(sample.group("labels")))
        if not labels.get("resource"):
            continue  # /metrics, /readyz and the like
        key = (labels["verb"], labels["resource"], labels.get("subresource", ""))
        value = int(float(sample.group("value")))
        total[key] += value
        if labels.get("code", "200") >= "400":
            failed[key] += value
    return total, failed


#: What the operator does per run for each request line (pod executor). Keys: verb, resource, subresource.
EXPLAIN: dict[Key, str] = {
    ("GET", "agentruns", ""): "the run, read afresh by every reconcile (its events, its Pod's, the resync)",
    ("LIST", "agentruns", ""): "an Agent's runs, once after the operator starts (then the watch); resync",
    ("PATCH", "agentruns", "status"): "the run's status: admitted, identity, startTime, Ready=Starting",
    ("GET", "agents", ""): "a run's first admission (shared, fresh.py), each Agent by its own reconcile",
    ("LIST", "agents", ""): "resync listing; a policy's reconcile counts the agents it governs",
    ("PATCH", "agents", "status"): "an Agent's status: Ready, bound policy, runs in flight, usage today",
    ("LIST", "agentpolicies", ""): "the policies governing an Agent (runs' admissions; Agents share them)",
    ("GET", "agentpolicies", ""): "a policy's own reconcile",
    ("PATCH", "agentpolicies", "status"): "a policy's status (agents governed)",
    ("LIST", "agentschedules", ""): "resync listing (no schedules here)",
    ("GET", "secrets", ""): "the model Secret exists and has the key (admissions; Agents share it)",
    ("POST", "serviceaccounts", ""): "the run's own ServiceAccount",
    ("POST", "roles", ""): "the run's generated Role (its own AgentRun, status, run file, journal)",
    ("POST", "rolebindings", ""): "binding the Role to the ServiceAccount",
    ("LIST", "rolebindings", ""): "cross-namespace bindings by run uid (startup sweep, revocation)",
    ("POST", "networkpolicies", ""): "the run Pod's NetworkPolicy (egress to model, API server)",
    ("POST", "configmaps", ""): "the run file (Agent and policy copied at start), immutable",
    ("POST", "pods", ""): "the run's Pod",
    ("LIST", "pods", ""): "the run's Pod by run-uid label, to mirror it (not after its create answered)",
    ("POST", "events", ""): "Events: one per run start (its steps in one), a warning each; Agents' Ready",
    ("WATCH", "agentruns", ""): "kopf's watches (counted when they end, every 60-300 s)",
    ("WATCH", "agents", ""): "kopf's watches",
    ("WATCH", "agentpolicies", ""): "kopf's watches",
    ("WATCH", "agentschedules", ""): "kopf's watches",
    ("WATCH", "pods", ""): "kopf's watches",
}


@dataclass
class Window:
    """API requests between `open` and `close`."""

    before: Counter[Key]
    before_failed: Counter[Key]
    started: float

    @classmethod
    def open(cls, testbed: Testbed) -> Window:
        total, failed = request_counts(testbed)
        return cls(total, failed, time.time())

    def close(self, testbed: Testbed) -> tuple[Counter[Key], Counter[Key], float]:
        total, failed = request_counts(testbed)
        return total - self.before, failed - self.before_failed, time.time() - self.started


@dataclass(frozen=True)
class Background:
    """The control plane's own requests over an idle window (kube-apiserver's loops, the controllers)."""

    requests: Counter[Key]
    seconds: float

    @classmethod
    def measure(cls, testbed: Testbed) -> Background:
        quiet = Window.open(testbed)
        time.sleep(BACKGROUND_SECONDS)
        requests, _, seconds = quiet.close(testbed)
        return cls(requests, seconds)

    def over(self, seconds: float) -> Counter[Key]:
        return Counter({k: round(v * seconds / self.seconds) for k, v in self.requests.items()})


def operator_requests(delta: Counter[Key], own: Counter[Key], background: Counter[Key]) -> Counter[Key]:
    """The window's requests less the benchmark's own and the background over the same time."""
    left = Counter(delta)
    left.subtract(own)
    left.subtract(background)
    return Counter({key: count for key, count in left.items() if count > 0})


def operators_share(requests: Counter[Key]) -> Counter[Key]:
    """The lines the operator makes (those EXPLAIN knows); the rest is the control plane's own."""
    return Counter({key: count for key, count in requests.items() if key in EXPLAIN})


def request_table(requests: Counter[Key], failed: Counter[Key], runs: int) -> list[str]:
    lines = [
        f"  {'verb':<6} {'resource':<22} {'per run':>7} {'total':>7} {'>=400':>6}  what the operator does"
    ]
    ours = operators_share(requests)
    for key, count in sorted(ours.items(), key=lambda kv: (-kv[1], kv[0])):
        verb, resource, sub = key
        name = f"{resource}/{sub}" if sub else resource
        lines.append(
            f"  {verb:<6} {name:<22} {count / runs:>7.2f} {count:>7} {min(failed.get(key, 0), count):>6}  "
            f"{EXPLAIN[key]}"
        )
    total = sum(ours.values())
    lines.append(f"  {'all':<29} {total / runs:>7.2f} {total:>7}")
    other = sum(requests.values()) - total
    lines.append(
        f"  not counted: {other} requests left after the background, not the operator's (kube-controller-"
        "manager's and kube-apiserver's own: watches they restart, LimitRanger admitting the Pods, ...)"
    )
    return lines


# ----- the benchmark ------------------------------------------------------------------------------------
def create_namespaces(bench: BenchTestbed, scale: Scale) -> list[str]:
    """`bench-jobs` and the fleet's namespaces, each of these with the model Secret and a `default`
    AgentPolicy (the operator tests' builders); waits until the controllers have given every namespace
    its `default` ServiceAccount (Job Pods need it) and CA ConfigMap, so the control plane is quiet."""
    namespaces = [f"fleet-{i}" for i in range(scale.namespaces)]
    for ns in [JOBS_NAMESPACE, *namespaces]:
        bench.testbed.kubectl("create", "namespace", ns)
    objects.apply(
        bench.testbed.kubectl,
        *(body for ns in namespaces for body in (objects.secret(ns), objects.policy(ns))),
    )
    for ns in [JOBS_NAMESPACE, *namespaces]:
        for path in ("serviceaccounts/default", "configmaps/kube-root-ca.crt"):
            wait_until(
                lambda: bench.http.get(f"/api/v1/namespaces/{ns}/{path}").is_success,  # noqa: B023 - now
                60,
                f"{path} in {ns}",
            )
    return namespaces


def jobs_baseline(bench: BenchTestbed, scale: Scale) -> tuple[float, float]:
    """(seconds to create the Jobs, seconds from the first create until every Job has its Pod)."""
    creator = Creator(bench.testbed)
    try:
        with WatchRecorder(bench.testbed, f"/api/v1/namespaces/{JOBS_NAMESPACE}/pods", job_pod) as pods:
            started = time.time()
            created = creator.create_all(job(i) for i in range(scale.jobs))
            wait_until(
                lambda: pods.count() >= scale.jobs,
                scale.timeout,
                f"{scale.jobs} Jobs to have their Pod",
                lambda: f" ({pods.count()} so far)",
            )
            return created, last(pods, started)
    finally:
        creator.close()


def wait_policies_accepted(bench: BenchTestbed, namespaces: list[str], log: Path) -> None:
    def accepted(ns: str) -> bool:
        policy = bench.http.get(f"{AGENCY}/namespaces/{ns}/agentpolicies/default").json()
        return objects.condition(policy.get("status") or {}, "Ready") is not None

    wait_until(
        lambda: all(accepted(ns) for ns in namespaces),
        60,
        "the AgentPolicies accepted",
        lambda: log_tail(log),
    )


def count_run_pods(bench: BenchTestbed, namespaces: list[str]) -> int:
    selector = {"labelSelector": "app.kubernetes.io/component=runtime"}
    return sum(
        len(bench.http.get(f"/api/v1/namespaces/{ns}/pods", params=selector).json()["items"])
        for ns in namespaces
    )


@dataclass
class FleetResult:
    created: float
    agents_ready: float
    runs_done: float
    latencies: list[float]
    pods: int
    peak_kb: int
    hwm_kb: int
    requests: Counter[Key]
    failed: Counter[Key]
    window: float
    cpu: dict[str, float]
    errors: list[str]

    @property
    def total(self) -> float:
        return max(self.agents_ready, self.runs_done)


def fleet_burst(
    bench: BenchTestbed, scale: Scale, namespaces: list[str], pid: int, log: Path, background: Background
) -> FleetResult:
    """Create the whole fleet at once; wait until the operator has reconciled all of it."""
    memory = MemorySampler(pid)
    processes = {"operator": pid, **bench.testbed.pids, "this benchmark": os.getpid()}
    bodies = [*fleet_agents(scale), *fleet_runs(scale)]
    creator = Creator(bench.testbed)
    runs = WatchRecorder(bench.testbed, f"{AGENCY}/agentruns", reconciled_run, modified=True)
    agents = WatchRecorder(bench.testbed, f"{AGENCY}/agents", ready_agent, modified=True)
    try:
        with runs, agents:
            window = Window.open(bench.testbed)
            cpu_before = cpu_of(processes)
            started = time.time()
            created = creator.create_all(bodies)
            wait_until(
                lambda: runs.count() >= scale.runs and agents.count() >= scale.agents,
                scale.timeout,
                "every Agent Ready and every run reconciled",
                lambda: f" (runs {runs.count()}, agents {agents.count()})" + log_tail(log, 10),
            )
            delta, failed, seconds = window.close(bench.testbed)
            cpu = {name: used - cpu_before[name] for name, used in cpu_of(processes).items()}
    finally:
        memory.stopped.set()
        creator.close()
    own = Counter({("POST", "agents", ""): scale.agents, ("POST", "agentruns", ""): scale.runs})
    return FleetResult(
        created=created,
        agents_ready=last(agents, started),
        runs_done=last(runs, started),
        latencies=[seen.at - creator.done[key] for key, seen in runs.seen.items()],
        pods=count_run_pods(bench, namespaces),
        peak_kb=memory.peak_kb,
        hwm_kb=memory.high_water_kb(),
        requests=operator_requests(delta, own, background.over(seconds)),
        failed=failed,
        window=seconds,
        cpu=cpu,
        errors=[
            line for line in log.read_text(errors="replace").splitlines() if '"severity": "error"' in line
        ],
    )


def report(scale: Scale, result: FleetResult, jobs_created: float, jobs: float) -> None:
    n, lat = scale.namespaces, result.latencies
    print(f"\nfleet: {scale.agents} Agents, {scale.runs} AgentRuns in {n} namespaces fleet-0..{n - 1}")
    print(
        f"  Agent i in fleet-(i mod {n}); run j runs Agent j mod {scale.agents} (in that Agent's namespace)"
    )
    print(
        f"  created all {scale.agents + scale.runs} in {result.created:.1f} s ({THREADS} threads, as admin)"
    )
    print(f"  every Agent Ready           {result.agents_ready:7.1f} s after the first create")
    print(f"  every run reconciled        {result.runs_done:7.1f} s after the first create (startTime set)")
    print(
        f"  one run, create->reconciled p50 {statistics.median(lat):.1f} s, p90 {percentile(lat, 90):.1f} s, "
        f"p99 {percentile(lat, 99):.1f} s"
    )
    print(f"  run Pods that exist         {result.pods} of {scale.runs}")
    print(f"  errors in the operator log  {len(result.errors)}")
    for line in result.errors[:3]:
        print(f"    {line[:300]}")
    print(
        f"  operator peak RSS           {result.peak_kb / 1024:.0f} MB (VmHWM {result.hwm_kb / 1024:.0f} MB)"
    )
    used = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.cpu.items())
    print(f"  CPU used in the window      {used}")
    print(
        f"\nbaseline: {scale.jobs} Jobs -> Pods by kube-controller-manager (its defaults: --kube-api-qps=20)"
    )
    print(f"  created all {scale.jobs} in {jobs_created:.1f} s")
    print(f"  every Job has its Pod       {jobs:7.1f} s after the first create")
    print(f"\nAPI requests by the operator over {result.window:.0f} s (benchmark's creates, background out):")
    for line in request_table(result.requests, result.failed, scale.runs):
        print(line)
    rss = max(result.peak_kb, result.hwm_kb) / 1024
    print(
        f"\nsummary: {scale.agents} Agents + {scale.runs} runs reconciled in {result.total:.1f} s "
        f"(target <= 120 s), {result.total / jobs:.2f}x the time of {scale.jobs} Jobs ({jobs:.1f} s); "
        f"operator peak RSS {rss:.0f} MB (target < 300 MB); "
        f"{sum(operators_share(result.requests).values()) / scale.runs:.1f} API requests per run"
    )


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    scale = Scale.from_env()
    print(f"fleet scale on {os.cpu_count()} cores, {load()}", flush=True)
    with bench_testbed("agency-fleet-") as bench:
        namespaces = create_namespaces(bench, scale)
        background = Background.measure(bench.testbed)
        operator = bench.operator(namespaces[0], executor="pod", more_namespaces=namespaces[1:])
        wait_policies_accepted(bench, namespaces, operator.log)
        print(f"fleet: {scale.agents} Agents and {scale.runs} AgentRuns at once", flush=True)
        result = fleet_burst(bench, scale, namespaces, operator.pid, operator.log, background)
        for factory in bench.operators:  # the Jobs have the control plane to themselves
            factory.stop_all()
        print(f"baseline: {scale.jobs} Jobs at once; kube-controller-manager creates their Pods", flush=True)
        jobs_created, jobs_seconds = jobs_baseline(bench, scale)
        report(scale, result, jobs_created, jobs_seconds)
        print(f"({load()} at the end)")
