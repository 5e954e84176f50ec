"""The operator as a real subprocess against the testbed: `python -m agency_operator`, started and stopped.

    def test_x(operator: OperatorFactory, namespace: str) -> None:
        op = operator.start(executor="local")       # waits until its liveness endpoint answers
        ...
        op.kill()                                    # SIGKILL, like a node failure
        operator.start(executor="local")            # a new process resumes the work

Each operator watches only the test's namespace, logs to `<tmp>/operator-N.log` (shown when startup
fails), and keeps local runs under `<tmp>/runs`. Every operator a test started is stopped at teardown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.procs import alive, free_ports, log_tail, start, stop, wait_until


@dataclass
class OperatorProcess:
    """One running operator process."""

    pid: int
    log: Path
    workdir: Path
    metrics_url: str
    liveness_url: str

    def alive(self) -> bool:
        return alive(self.pid)

    def kill(self) -> None:
        """SIGKILL the operator (no cleanup handlers run) and wait until it is gone."""
        if alive(self.pid):
            os.killpg(self.pid, signal.SIGKILL)
        wait_until(lambda: not alive(self.pid), 10, f"operator pid {self.pid} to die")

    def stop(self) -> None:
        stop(self.pid)

    def metrics(self) -> str:
        return httpx.get(self.metrics_url, timeout=5).text

    def reconciles(self, kind: str = "AgentRun") -> int:
        """How many reconciles of `kind` this process has finished (from its Prometheus metrics)."""
        found = re.search(
            rf'^agency_reconcile_duration_seconds_count{{kind="{kind}"}} (\S+)$', self.metrics(), re.M
        )
        return int(float(found.group(1))) if found else 0

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log, lines)


@dataclass
class OperatorFactory:
    """Starts operators for one test; `started` are stopped at teardown."""

    testbed: Testbed
    namespace: str
    folder: Path
    started: list[OperatorProcess] = field(default_factory=list)
    #: Namespaces watched besides `namespace` (a benchmark spreads its fleet over several).
    more_namespaces: tuple[str, ...] = ()

    @property
    def workdir(self) -> Path:
        return self.folder / "runs"

    def start(
        self,
        *,
        executor: str = "local",
        env: Mapping[str, str] | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 60.0,
    ) -> OperatorProcess:
        """Start an operator (as admin, or as whoever `kubeconfig` logs in as) and wait until it is live.

        `env` is added to the environment and wins over the test defaults below (a benchmark passes
        `AGENCY_RESYNC_SECONDS=10`, the production default, instead of the tests' 1 s).
        """
        metrics_port, liveness_port = free_ports(2)
        log = self.folder / f"operator-{len(self.started)}.log"
        liveness = f"http://127.0.0.1:{liveness_port}/healthz"
        full_env = {
            **self.testbed.env(),
            "AGENCY_EXECUTOR": executor,
            "AGENCY_LOCAL_WORKDIR": str(self.workdir),
            "AGENCY_METRICS_PORT": str(metrics_port),
            "AGENCY_LIVENESS_ENDPOINT": liveness,
            "AGENCY_RESYNC_SECONDS": "1",
            "AGENCY_WATCH_SERVER_TIMEOUT_SECONDS": "60",
            "AGENCY_WATCH_CLIENT_TIMEOUT_SECONDS": "70",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **(env or {}),
        }
        if kubeconfig is not None:
            full_env["KUBECONFIG"] = str(kubeconfig)
        watched = [arg for ns in (self.namespace, *self.more_namespaces) for arg in ("--namespace", ns)]
        pid = start([sys.executable, "-m", "agency_operator", *watched], log, env=full_env)
        process = OperatorProcess(
            pid, log, self.workdir, f"http://127.0.0.1:{metrics_port}/metrics", liveness
        )
        self.started.append(process)

        def ready() -> bool:
            if not alive(pid):
                raise RuntimeError(f"the operator exited at startup:{log_tail(log, 40)}")
            try:
                return httpx.get(liveness, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, "the operator's liveness endpoint", lambda: log_tail(log, 40))
        return process

    def stop_all(self) -> None:
        """Stop the operators, then every local run process they left (runs outlive their operator, as
        Pods do; a test's runs must not outlive the test)."""
        for process in self.started:
            process.stop()
        for pid_file in self.workdir.glob("*/*/pid*"):
            try:
                os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError, PermissionError):
                continue


@pytest.fixture
def operator(
    testbed: Testbed, agency_crds: list[str], namespace: str, tmp_path: Path
) -> Iterator[OperatorFactory]:
    """Start `python -m agency_operator` subprocesses watching the test's namespace; stopped at teardown."""
    factory = OperatorFactory(testbed, namespace, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


# ----- helpers the operator's tests share ---------------------------------------------------------------
JsonDict = dict[str, Any]


def api_get(testbed: Testbed, path: str) -> JsonDict | None:
    """An object as admin, or None if it does not exist."""
    with testbed.http() as http:
        response = http.get(path)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    body: JsonDict = response.json()
    return body


def api_list(testbed: Testbed, path: str, selector: str | None = None) -> list[JsonDict]:
    with testbed.http() as http:
        response = http.get(path, params={"labelSelector": selector} if selector else None)
    response.raise_for_status()
    items: list[JsonDict] = response.json()["items"]
    return items


def run_path(namespace: str, name: str = "") -> str:
    return f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agentruns/{name}".rstrip("/")


def run_status(testbed: Testbed, namespace: str, name: str) -> JsonDict:
    run = api_get(testbed, run_path(namespace, name))
    status: JsonDict = (run or {}).get("status") or {}
    return status


def condition(status: JsonDict, type_: str) -> JsonDict | None:
    for cond in status.get("conditions", []):
        if cond["type"] == type_:
            found: JsonDict = cond
            return found
    return None


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, detail: Callable[[], str] | None = None
) -> None:
    """Poll `check` until it returns something truthy; fail naming `what` (and `detail()`) after `timeout`."""
    wait_until(lambda: bool(check()), timeout, what, detail)


def wait_for_phase(
    testbed: Testbed, namespace: str, name: str, phase: str, timeout: float = 60.0
) -> JsonDict:
    """The run's status once it reaches `phase`."""
    wait_for(
        lambda: run_status(testbed, namespace, name).get("phase") == phase,
        timeout,
        f"AgentRun {namespace}/{name} to reach phase {phase}",
        lambda: f" (status now: {run_status(testbed, namespace, name)})",
    )
    return run_status(testbed, namespace, name)


def finish_pod(testbed: Testbed, namespace: str, result: dict[str, Any], name: str = "r1") -> None:
    """Write the Pod's status as a kubelet would once the runtime exited, its result as the termination
    message (the testbed has no kubelet, so no Pod log to read it from)."""
    exit_code = 0 if result.get("phase") in ("Succeeded", "WaitingForApproval") else 1
    status = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": "runtime",
                "ready": False,
                "restartCount": 0,
                "image": "runtime",
                "imageID": "",
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "message": json.dumps(result),
                    }
                },
            }
        ],
    }
    with testbed.http() as http:
        answer = http.patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    answer.raise_for_status()


# ----- objects ------------------------------------------------------------------------------------------
STUB_RUNTIME = Path(__file__).resolve().parents[1] / "integration" / "operator" / "stub_runtime.py"
#: The local executor runs the stub instead of the real runtime: the tests here are about the operator.
STUB_ENV = {"AGENCY_RUNTIME_COMMAND": f"{sys.executable} {STUB_RUNTIME}"}


def apply(kubectl: Kubectl, *objects: JsonDict) -> None:
    kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    )


def secret(namespace: str, name: str = "model-key", data: dict[str, str] | None = None) -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"apiKey": "sk-test-not-a-real-key"} if data is None else data,
    }


def policy(namespace: str, name: str = "default", **spec: Any) -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"models": {"allowed": ["openai/*"]}, **spec},
    }


def agent(namespace: str, name: str = "helper", model: str = "openai/triage", **spec: Any) -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "name": model,
                "apiBase": "http://127.0.0.1:9/v1",
                "credentialsSecretRef": {"name": "model-key", "key": "apiKey"},
            },
            "instructions": "Help the operator's tests.",
            **spec,
        },
    }


def run(
    namespace: str, name: str = "r1", agent_name: str = "helper", ask: JsonDict | None = None, **spec: Any
) -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"agentRef": {"name": agent_name}, "input": json.dumps(ask or {}), **spec},
    }
