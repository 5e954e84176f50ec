"""kube-apiserver restarted while a run is in progress: the real runtime (through the operator's local
executor, journaling to ConfigMaps and patching its status with the run's own token) goes on once the API
server is back, and the run succeeds without a lost step or a duplicate side effect, its identity revoked.

This test starts a testbed of its own (about 10-20 s): a restart cuts every watch and connection to the
server, and one that did not come back would fail every later test of the session, not just this one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agency_operator import names
from agency_runtime.journal import Kind, Record
from agency_runtime.journal_kube import head_name
from agency_testbed.cluster import Testbed
from agency_testbed.fixtures_operator import (
    OperatorFactory,
    agent,
    api_get,
    api_list,
    apply,
    policy,
    run,
    run_path,
    run_status,
    secret,
    wait_for,
)
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import JsonDict, Reply, call, reply
from agency_testbed.procs import wait_until
from e2e.chaos.report import ChaosReport
from e2e.chaos.report import Record as RecordReport
from unit.runtime.runtime_endpoint import CountingEndpoint

#: Bounded by the waits below; above the default per-test timeout so that a loaded machine is not a failure.
pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "chaos"
RUN = "across-restart"
ANSWER = "read, wrote, and the API server came back"
WAIT = 150.0
RBAC = "/apis/rbac.authorization.k8s.io/v1"


@pytest.fixture
def own_testbed(tmp_path: Path) -> Iterator[Testbed]:
    """A control plane for this test alone, with the CRDs (and admission policies) applied."""
    testbed = Testbed.start(tmp_path / "testbed")
    try:
        testbed.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        testbed.kubectl("wait", "--for=condition=Established", "--all", "crd", "--timeout=60s")
        testbed.kubectl("create", "namespace", NAMESPACE)
        yield testbed
    finally:
        testbed.stop()


def _ready(testbed: Testbed) -> bool:
    try:
        with testbed.http(timeout=2) as http:
            return http.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _journal(testbed: Testbed) -> list[Record]:
    head = api_get(testbed, f"/api/v1/namespaces/{NAMESPACE}/configmaps/{head_name(RUN)}") or {}
    data = head.get("data") or {}
    assert data.get("chunks", "0") == "0", "a three-step run fits in the journal's head"
    return [Record.from_json(json.loads(line)) for line in data.get("records", "").splitlines() if line]


class HeldModel:
    """Step 1 reads, step 2 writes, step 3 answers; the answer of step 2 waits until `release`."""

    def __init__(self, endpoint: CountingEndpoint) -> None:
        self.endpoint = endpoint
        self.asks: Counter[int] = Counter()
        self.held = threading.Event()
        self.release = threading.Event()

    def __call__(self, body: JsonDict) -> Reply:
        step = 1 + sum(m["role"] == "assistant" for m in body["messages"])
        self.asks[step] += 1
        if step == 1:
            return reply(
                tool_calls=[call("http_request", {"method": "GET", "url": f"{self.endpoint.url}/read"})]
            )
        if step == 2:
            self.held.set()
            self.release.wait(WAIT)
            write = {"method": "POST", "url": f"{self.endpoint.url}/write", "body": {"n": 1}}
            return reply(tool_calls=[call("http_request", write)])
        return reply(ANSWER)


def test_a_run_in_progress_when_kube_apiserver_restarts_succeeds_once_with_its_identity_revoked(
    own_testbed: Testbed, scripted_llm: ScriptedLLM, tmp_path: Path, chaos_report: RecordReport
) -> None:
    testbed = own_testbed
    started = time.monotonic()
    factory = OperatorFactory(testbed, NAMESPACE, tmp_path / "operator")
    with CountingEndpoint() as endpoint:
        model = HeldModel(endpoint)
        scripted_llm.script("chaos-apiserver", [model], repeat_last=True)
        port = int(endpoint.url.rsplit(":", 1)[1])
        autonomy = {"readOnly": {"level": "act"}, "destructive": {"level": "act"}}
        egress = [{"hosts": ["127.0.0.1"], "ports": [{"port": port}]}]
        the_agent = agent(NAMESPACE, model="openai/chaos-apiserver")
        the_agent["spec"]["model"]["apiBase"] = scripted_llm.base_url
        the_agent["spec"]["tools"] = [{"name": "http_request", "builtin": "http"}]
        try:
            apply(
                testbed.kubectl,
                secret(NAMESPACE),
                policy(NAMESPACE, autonomy=autonomy, network={"egress": egress}),
                the_agent,
                run(NAMESPACE, RUN, input="Read, then write."),
            )
            operator = factory.start(executor="local", env={"AGENCY_LOCAL_JOURNAL": "kubernetes"})
            assert model.held.wait(WAIT), f"the run never asked for step 2:{operator.log_tail()}"

            restart = threading.Thread(target=testbed.restart_apiserver)
            restart.start()
            wait_until(lambda: not _ready(testbed), 60, "kube-apiserver to go down")
            down_at = time.time()
            model.release.set()  # the runtime gets step 2's answer while the API server is away
            restart.join(WAIT)
            back_at = time.time()

            def ended() -> bool:
                return run_status(testbed, NAMESPACE, RUN).get("phase") in ("Succeeded", "Failed")

            wait_for(ended, WAIT, "the run to end", operator.log_tail)
            status = run_status(testbed, NAMESPACE, RUN)
            uid = (api_get(testbed, run_path(NAMESPACE, RUN)) or {})["metadata"]["uid"]
            records = _journal(testbed)
            selector = f"{names.RUN_UID_LABEL}={uid}"

            def identity() -> list[JsonDict]:
                return [
                    *api_list(testbed, f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", selector),
                    *api_list(testbed, f"{RBAC}/namespaces/{NAMESPACE}/roles", selector),
                    *api_list(testbed, f"{RBAC}/rolebindings", selector),
                ]

            if status.get("phase") == "Succeeded":
                wait_for(lambda: not identity(), 30, "the run's identity to be revoked")
            left = identity()
            operator_alive = operator.alive()
        finally:
            model.release.set()
            factory.stop_all()
        effects = Counter(effect.split()[1] for effect in endpoint.effects)

    results = Counter(r.key for r in records if r.kind is Kind.RESULT)
    expected = ["step-1/model", "step-1/tool-0", "step-2/model", "step-2/tool-0", "step-3/model"]
    written = [r.at for r in records if r.kind is Kind.RESULT and r.key == "step-2/model"]
    report = ChaosReport(
        suite="kube-apiserver restart",
        seed=0,
        runs=1,
        completed=int(status.get("phase") == "Succeeded" and status.get("result") == ANSWER),
        kills=1,
        steps_lost=sum(results[key] != 1 for key in expected) + (effects["/write"] == 0),
        repeated_calls=sum(count - 1 for count in model.asks.values()),
        duplicate_side_effects=max(0, effects["/write"] - 1),
        orphans=len(left),
        wall_seconds=time.monotonic() - started,
    )
    chaos_report(report)
    assert report.completed == 1, f"the run ended {status}:{operator.log_tail()}"
    assert report.zeros() == dict.fromkeys(report.zeros(), 0), (
        f"journal results {dict(results)}, asked {dict(model.asks)}, effects {dict(effects)}, left {left}"
    )
    assert len(written) == 1
    assert down_at <= written[0] < back_at, "step 2's answer was journaled while the API server was away"
    assert operator_alive, "the operator lived through the outage"
