"""What the benchmarks that need a control plane share: the testbed, the CRDs, the operator, watches, tables.

    with bench_testbed("agency-bench-") as bench:         # Testbed.start in a temp folder, CRDs applied
        ns = bench.namespace("bench")                      # a namespace with a model key, policy and agent
        op = bench.operator(ns, executor="pod")            # `python -m agency_operator` as its ServiceAccount
        with WatchRecorder(bench.testbed, pods_path(ns), run_or_job_key) as pods:
            started = time.time(); bench.post(path, body)   # as admin over HTTP, one kept-alive connection
            seen = pods.wait_for(key, timeout=30)           # Seen(at=<time.time() the ADDED arrived>, obj)
    print_table("latency (ms)", {"plain Job": [...], "AgentRun": [...]})

- `knob(name, default)`: an integer scale knob from the environment (`AGENCY_BENCH_*`), so a quick run
  is `AGENCY_BENCH_RUNS=20 python -m benchmarks ...`.
- `BenchTestbed.operator(namespace, executor=..., env=...)` starts the operator through the tests'
  `OperatorFactory` (the same process and environment the integration tests use) but with the
  operator's production defaults for the resync interval and watch timeouts, overridable by `env`.
  The operator is stopped (by pid) when the `bench_testbed` block ends, then the testbed.
- `WatchRecorder(testbed, path, key)`: one watch stream on `path` in a thread, recording for each key the
  first time (client wall clock, `time.time()`) an ADDED event arrived, and the object as it was then.
  `key(obj)` says what the object is (None: not one we time). Arrival on the client is what "exists"
  means to a user, and a watch adds no polling delay.
- `percentile`, `print_table`: nearest-rank percentiles (p50, p90, p99, max) printed as one table.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agency_testbed.cluster import Testbed
from agency_testbed.fixtures_operator import OperatorFactory, OperatorProcess, agent, apply, policy, secret
from agency_testbed.operator_login import operator_login
from agency_testbed.procs import wait_until

REPO = Path(__file__).resolve().parents[1]
#: Where the operator's ServiceAccount lives, as the chart installs it.
OPERATOR_NAMESPACE = "agency-system"
JsonDict = dict[str, Any]

#: What the operator runs with in production (settings.py): benchmarks time the operator users get,
#: not the tests' 1 s resync.
PRODUCTION_ENV = {
    "AGENCY_RESYNC_SECONDS": "10",
    "AGENCY_WATCH_SERVER_TIMEOUT_SECONDS": "300",
    "AGENCY_WATCH_CLIENT_TIMEOUT_SECONDS": "330",
}


def job_spec() -> JsonDict:
    """The plainest one-Pod Job, the baselines' unit of work (`backoffLimit: 0`: runs are not retried)."""
    pod = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
    }
    return {"backoffLimit": 0, "template": {"spec": pod}}


def job(namespace: str, name: str) -> JsonDict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": job_spec(),
    }


def knob(name: str, default: int) -> int:
    """An integer scale knob from the environment (e.g. AGENCY_BENCH_RUNS); `default` when unset."""
    raw = os.environ.get(name, "")
    return int(raw) if raw else default


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def print_table(title: str, rows: Mapping[str, list[float]], digits: int = 1) -> None:
    """One line per row: n, p50, p90, p99 and max of its values."""
    print(title)
    print(f"  {'':<34} {'n':>5} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}")
    for label, values in rows.items():
        cells = " ".join(f"{percentile(values, p):>9.{digits}f}" for p in (50, 90, 99, 100))
        print(f"  {label:<34} {len(values):>5} {cells}")


@dataclass
class BenchTestbed:
    """A started testbed with the CRDs applied, an admin HTTP client, and the operators started on it."""

    testbed: Testbed
    folder: Path
    http: httpx.Client
    #: How the operators log in: as the chart's operator does, its ServiceAccount's token bound to its
    #: ClusterRole (`operator_login.py`), so the API server authenticates it as it would in a cluster.
    operator_kubeconfig: Path
    operators: list[OperatorFactory] = field(default_factory=list)

    def namespace(self, name: str) -> str:
        """Create `name` with the model-key Secret, the `default` AgentPolicy and the `helper` Agent of the
        operator's tests (fixtures_operator); waits for the namespace's `default` ServiceAccount, which
        Pods of a plain Job need."""
        self.testbed.kubectl("create", "namespace", name)
        apply(self.testbed.kubectl, secret(name), policy(name), agent(name))
        wait_until(
            lambda: self.http.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code == 200,
            60,
            f"the default ServiceAccount in {name}",
        )
        return name

    def operator(
        self,
        namespace: str,
        *,
        executor: str = "pod",
        env: Mapping[str, str] | None = None,
        more_namespaces: Sequence[str] = (),
    ) -> OperatorProcess:
        """Start `python -m agency_operator` watching `namespace` and `more_namespaces`; wait until live."""
        factory = OperatorFactory(
            self.testbed,
            namespace,
            self.folder / f"operator-{len(self.operators)}",
            more_namespaces=tuple(more_namespaces),
        )
        factory.folder.mkdir(parents=True, exist_ok=True)
        self.operators.append(factory)
        return factory.start(
            executor=executor, env={**PRODUCTION_ENV, **(env or {})}, kubeconfig=self.operator_kubeconfig
        )

    def post(self, path: str, body: JsonDict) -> JsonDict:
        """Create an object as admin (what `kubectl create` sends), raising on an error answer."""
        answer = self.http.post(path, json=body)
        if answer.status_code >= 400:
            raise RuntimeError(f"POST {path} answered {answer.status_code}: {answer.text}")
        created: JsonDict = answer.json()
        return created


def apply_crds(testbed: Testbed) -> None:
    """Every file in crds/ applied server-side, and the CRDs Established."""
    files = sorted((REPO / "crds").glob("*.yaml"))
    args = [a for f in files for a in ("-f", str(f))]
    testbed.kubectl("apply", "--server-side", "--force-conflicts", *args)
    names = [n for n in testbed.kubectl("get", *args, "-o", "name").stdout.split() if "customresource" in n]
    testbed.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)


@contextmanager
def bench_testbed(prefix: str) -> Iterator[BenchTestbed]:
    """A fresh testbed in a temp folder with the CRDs applied; everything started in it stops at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp)
        testbed = Testbed.start(folder / "testbed")
        try:
            apply_crds(testbed)
            testbed.kubectl("create", "namespace", OPERATOR_NAMESPACE)
            with (
                operator_login(testbed, OPERATOR_NAMESPACE, folder) as kubeconfig,
                testbed.http(timeout=30) as http,
            ):
                bench = BenchTestbed(testbed, folder, http, kubeconfig)
                try:
                    yield bench
                finally:
                    for factory in bench.operators:
                        factory.stop_all()
        finally:
            testbed.stop()


@contextmanager
def steady_clock() -> Iterator[None]:
    """The benchmark process's own cyclic garbage collector off while it times (and what exists frozen):
    a full collection here paused the watch thread for 40-65 ms, a delay charged to whichever object's
    event was arriving, Job or AgentRun alike. The collector is back on, and run, afterwards."""
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


# ----- watching -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """An object's first ADDED event: when it arrived here (`time.time()`) and the object as it was."""

    at: float
    obj: JsonDict


def label_key(*labels: str) -> Callable[[JsonDict], str | None]:
    """A key function: the value of the first of `labels` the object carries (None if none)."""

    def key(obj: JsonDict) -> str | None:
        found = obj["metadata"].get("labels") or {}
        return next((found[label] for label in labels if label in found), None)

    return key


def name_key(obj: JsonDict) -> str | None:
    name: str | None = obj["metadata"].get("name")
    return name


class WatchRecorder:
    """Records the first ADDED event of every object under `path` (a collection URL) by `key(obj)`.

    With `modified=True` MODIFIED events count too: `key` then says when an object has become what is
    timed (e.g. a run whose status has a startTime), and returns None until it has.
    """

    def __init__(
        self, testbed: Testbed, path: str, key: Callable[[JsonDict], str | None], *, modified: bool = False
    ) -> None:
        self.testbed = testbed
        self.path = path
        self.key = key
        self.events = ("ADDED", "MODIFIED") if modified else ("ADDED",)
        self.seen: dict[str, Seen] = {}
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._response: httpx.Response | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch {path}", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> WatchRecorder:
        self._thread.start()
        if not self._ready.wait(60):
            self.__exit__()
            raise TimeoutError(f"the watch on {self.path} did not start in 60 s: {self.error}")
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        response = self._response
        if response is not None:
            response.close()
        self._thread.join(timeout=10)

    def wait_for(self, key: str, timeout: float) -> Seen:
        """The first ADDED of `key`, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while key not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no ADDED event for {key} on {self.path} in {timeout:.0f}s: {self.error}"
                    )
                self._changed.wait(left)
            return self.seen[key]

    def count(self) -> int:
        with self._changed:
            return len(self.seen)

    def _loop(self) -> None:
        version: str | None = None
        with self.testbed.http(timeout=30) as http:
            while not self._stopped.is_set():
                try:
                    if version is None:
                        version = self._list(http)
                    version = self._watch(http, version)
                except _Expired:
                    version = None
                except Exception as err:  # closing the stream at exit lands here too, as do retried errors
                    if self._stopped.is_set():
                        return
                    # A CRD's watch answers 429 until its watch cache is ready; the apiserver may be busy.
                    self.error = err
                    time.sleep(0.2)

    def _list(self, http: httpx.Client) -> str:
        """The collection's resourceVersion to watch from. Objects already there count as added now: at
        the start there are none we time; after an expired watch this bounds when they arrived."""
        listed = http.get(self.path).raise_for_status().json()
        arrived = time.time()
        with self._changed:
            for obj in listed["items"]:
                self._record(obj, arrived)
        version: str = listed["metadata"]["resourceVersion"]
        return version

    def _record(self, obj: JsonDict, arrived: float) -> None:
        key = self.key(obj)
        if key is not None and key not in self.seen:
            self.seen[key] = Seen(arrived, obj)
            self._changed.notify_all()

    def _watch(self, http: httpx.Client, version: str) -> str:
        params = {
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "600",
        }
        timeout = httpx.Timeout(30, read=660)
        with http.stream("GET", self.path, params=params, timeout=timeout) as response:
            self._response = response
            response.raise_for_status()
            self._ready.set()
            for line in response.iter_lines():
                arrived = time.time()
                if not line:
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise RuntimeError(f"watch {self.path}: {obj.get('message')}")
                version = obj["metadata"].get("resourceVersion", version)
                if event["type"] in self.events:
                    with self._changed:
                        self._record(obj, arrived)
        return version


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""
