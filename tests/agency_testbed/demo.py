"""`make demo`: the cold-chain agent on a real control plane, with a scripted model, from a fresh machine.

What it starts (all on loopback, all stopped at the end):
- the testbed control plane (etcd, kube-apiserver, kube-controller-manager),
- Jaeger v2 (OTLP in, query API out),
- the scripted OpenAI-compatible model (the one thing that is not real: no hosted model is called),
- two stand-in cold-chain services (sensor readings, technician dispatch) that count their calls,
- the operator (`python -m agency_operator`) with the `local` executor: each run is a runtime process
  with exactly the environment and bound token its Pod would get.

Then it applies the CRDs and the `examples/cold-chain/` policy and agent — pointed at the scripted model and
the stand-in services — starts the example AgentRun, shows its progress, and prints the trace and a usage
table. The dispatch is destructive, so the policy holds it for approval: the demo approves it with
`kubectl agency approve` and follows the run to its end.

Where Docker (with a running engine) and kind are installed, the same fleet runs on a kind cluster instead:
the image built from the Dockerfile, the Helm chart with the `pod` executor (`demo_kind.py`).
`AGENCY_DEMO_TARGET=testbed|kind` forces one; the tests force `testbed`, so they never depend on Docker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from agency_testbed import build, demo_kind
from agency_testbed.cluster import Testbed
from agency_testbed.demo_kind import DemoError, KindCluster, Target
from agency_testbed.jaeger import Jaeger, TraceView
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from agency_testbed.procs import alive, free_port, log_tail, start, stop, wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "cold-chain"
NAMESPACE = "cold-chain"
RUN = "check-container-msku-4471"
AGENT = "cold-chain-monitor"
FINAL_PHASES = frozenset({"Succeeded", "Failed", "BudgetExceeded", "Cancelled", "WaitingForApproval"})
JsonDict = dict[str, Any]


def say(message: str) -> None:
    print(f"\033[1m==>\033[0m {message}", flush=True)


class Cluster(Protocol):
    """What the demo drives: the loopback testbed or a kind cluster (kubectl as admin, a client env)."""

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]: ...

    def env(self) -> dict[str, str]: ...


# ----- stand-in services ---------------------------------------------------------------------------------
class ColdChainServices(ThreadingHTTPServer):
    """Sensor readings and technician dispatch, counting every call so the demo can show what happened."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _ServiceHandler)
        self.host = host
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _ServiceHandler(BaseHTTPRequestHandler):
    server: ColdChainServices

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, body: JsonDict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _count(self, what: str) -> None:
        with self.server.lock:
            self.server.calls[what] = self.server.calls.get(what, 0) + 1

    def do_GET(self) -> None:
        self._count("readings")
        readings = [{"minute": m, "celsius": round(5.1 + 0.07 * m, 1)} for m in range(0, 60, 10)]
        self._answer({"containerId": "MSKU-4471", "readings": readings})

    def do_POST(self) -> None:
        self._count("dispatches")
        self._answer({"dispatch": "D-1001", "eta_minutes": 40})


# ----- the fleet, pointed at the demo's model and services ------------------------------------------------
def load_examples() -> dict[str, JsonDict]:
    found: dict[str, JsonDict] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def adapt(
    fleet: dict[str, JsonDict], model_url: str, services: ColdChainServices, *, chart: bool
) -> list[JsonDict]:
    """The example policy, agent and run, changed only where a laptop differs from production."""
    policy = fleet["AgentPolicy/cold-chain"]
    policy["spec"]["models"]["allowed"].append("openai/*")
    policy["spec"]["network"]["egress"].append({"hosts": [services.host], "ports": [{"port": services.port}]})
    if not chart:  # the chart installs agency-agent-read-only; the bare testbed has no such ClusterRole
        policy["spec"]["identity"]["clusterRoles"] = []

    agent = fleet[f"Agent/{AGENT}"]
    model = agent["spec"]["model"]
    say(f"the agent thinks with the scripted model at {model_url} (in production: {model['name']})")
    model.update(
        name=f"openai/{AGENT}",
        apiBase=model_url,
        credentialsSecretRef={"name": "model-credentials", "key": "api-key"},
        pricing={"inputPerMillionTokensUSD": 3.0, "outputPerMillionTokensUSD": 15.0},
    )
    model.pop("fallbacks", None)
    for tool in agent["spec"]["tools"]:
        http = tool.get("http")
        if http:
            path = http["url"].split("/", 3)[3]
            http["url"] = f"{services.url}/{path}"
            http.pop("headers", None)  # the stand-in services need no credentials
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "model-credentials"},
        "stringData": {"api-key": "demo-key-not-a-secret"},
    }
    return [secret, policy, agent]


def script_model(llm: ScriptedLLM) -> None:
    """What the model answers, step by step: read the sensors, plan, propose the dispatch."""
    llm.script(
        AGENT,
        [
            reply(
                tool_calls=[call("get_sensor_readings", {"containerId": "MSKU-4471", "minutes": 60})],
                usage=(1450, 60),
            ),
            reply(
                tool_calls=[
                    call(
                        "update_plan",
                        {"plan": "1. readings show a steady rise, not an outlier\n2. dispatch a technician"},
                    )
                ],
                usage=(1710, 90),
            ),
            reply(
                tool_calls=[
                    call(
                        "dispatch_technician",
                        {
                            "containerId": "MSKU-4471",
                            "depot": "Rotterdam-Waalhaven",
                            "reason": "9.3 °C and rising for 50 minutes; vaccines at risk",
                        },
                    )
                ],
                usage=(1980, 120),
            ),
            reply(
                "The excursion is real: technician dispatch D-1001 is on its way, ETA 40 minutes.",
                usage=(2100, 40),
            ),
            # The reflection step after the run: the lesson the agent's next run is told.
            reply(
                "A steady rise over 50 minutes is a real excursion; act on trends, not single spikes.",
                usage=(900, 30),
            ),
        ],
        repeat_last=True,
    )


# ----- processes -------------------------------------------------------------------------------------------
@contextmanager
def operator_process(testbed: Testbed, folder: Path, otlp: str) -> Iterator[int]:
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    env = dict(
        testbed.env(),
        AGENCY_EXECUTOR="local",
        AGENCY_LOCAL_WORKDIR=str(folder / "runs"),
        AGENCY_METRICS_PORT=str(free_port()),
        AGENCY_LIVENESS_ENDPOINT=liveness,
        AGENCY_OTLP_ENDPOINT=otlp,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    log = folder / "operator.log"
    pid = start([sys.executable, "-m", "agency_operator", "--namespace", NAMESPACE], log, env=env)

    def live() -> bool:
        if not alive(pid):
            raise RuntimeError(f"the operator exited at startup:{log_tail(log)}")
        try:
            return httpx.get(liveness, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(live, 90, "the operator to start", lambda: log_tail(log))
        yield pid
    finally:
        stop(pid)


def run_status(cluster: Cluster) -> JsonDict:
    out = cluster.kubectl("get", "agentrun", RUN, "-n", NAMESPACE, "-o", "json", check=False)
    if out.returncode != 0:
        return {}
    status: JsonDict = json.loads(out.stdout).get("status") or {}
    return status


def follow(cluster: Cluster, final: frozenset[str] = FINAL_PHASES, timeout: float = 180.0) -> JsonDict:
    """Print one progress line while the run moves; return its status once it stops moving."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status = run_status(cluster)
        usage = status.get("usage") or {}
        line = (
            f"   {RUN}: phase={status.get('phase', 'Pending')} steps={status.get('stepCount', 0)} "
            f"tokens={usage.get('inputTokens', 0) + usage.get('outputTokens', 0)} "
            f"cost=${float(usage.get('costUSD', 0) or 0):.4f}"
        )
        if line != last:
            print(line, flush=True)
            last = line
        if status.get("phase") in final:
            return status
        time.sleep(0.5)
    raise TimeoutError(f"the run did not finish within {timeout:.0f}s; last status: {run_status(cluster)}")


def show_conditions(status: JsonDict) -> None:
    for cond in status.get("conditions") or []:
        if cond.get("status") != "Unknown":
            head = f"condition {cond['type']}={cond['status']} ({cond.get('reason')})"
            say(f"{head}: {cond.get('message', '')}")


def show_trace(jaeger: Jaeger, trace_id: str) -> None:
    trace = jaeger.wait_for_trace(trace_id, min_spans=3, timeout=30)
    view = TraceView.from_json(trace)
    say(f"trace {trace_id} ({len(view.spans)} spans), read back from Jaeger at {jaeger.query_url}:")
    for line in view.outline().splitlines():
        print(f"   {line}")


def usage_table(cluster: Cluster) -> None:
    runs = json.loads(cluster.kubectl("get", "agentruns", "-A", "-o", "json").stdout)["items"]
    rows: dict[tuple[str, str], list[float]] = {}
    for item in runs:
        usage = (item.get("status") or {}).get("usage") or {}
        key = (item["metadata"]["namespace"], item["spec"]["agentRef"]["name"])
        row = rows.setdefault(key, [0, 0, 0, 0.0])
        row[0] += 1
        row[1] += usage.get("inputTokens", 0)
        row[2] += usage.get("outputTokens", 0)
        row[3] += float(usage.get("costUSD", 0) or 0)
    say("usage by agent:")
    print(f"   {'NAMESPACE':<12} {'AGENT':<20} {'RUNS':>4} {'INPUT':>8} {'OUTPUT':>8} {'COST USD':>9}")
    for (namespace, agent), (count, tokens_in, tokens_out, cost) in sorted(rows.items()):
        print(
            f"   {namespace:<12} {agent:<20} {count:>4.0f} {tokens_in:>8.0f} {tokens_out:>8.0f} {cost:>9.4f}"
        )


def play(
    cluster: Cluster, jaeger: Jaeger, llm: ScriptedLLM, services: ColdChainServices, *, chart: bool
) -> None:
    """The fleet on a cluster whose operator runs: apply, run, follow, approve, follow, show what happened."""
    script_model(llm)
    objects = adapt(load_examples(), llm.base_url, services, chart=chart)
    say("kubectl apply: the cold-chain AgentPolicy and Agent")
    cluster.kubectl(
        "apply",
        "-n",
        NAMESPACE,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )
    say(f"kubectl apply: AgentRun {RUN}")
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(EXAMPLES / "run.yaml"))
    status = follow(cluster)
    show_conditions(status)
    for pending in status.get("pendingApprovals") or []:
        say(f"waiting for approval: {json.dumps(pending)}")
    say(f"calls at the stand-in services so far: {services.calls or 'none'}")
    if status.get("phase") == "WaitingForApproval":
        say(f"kubectl agency approve {RUN} -n {NAMESPACE}  (as the on-call approver)")
        approve = subprocess.run(
            [
                str(Path(sys.executable).parent / "kubectl-agency"),
                "approve",
                RUN,
                "-n",
                NAMESPACE,
                "--reason",
                "depot confirmed a technician is free",
            ],
            env=cluster.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"   {(approve.stdout + approve.stderr).strip()}")
        status = follow(cluster, FINAL_PHASES - {"WaitingForApproval"})
        show_conditions(status)
    print(cluster.kubectl("get", "agentrun", "-n", NAMESPACE, "-o", "wide").stdout, end="")
    if status.get("result"):
        say(f"result: {status['result']}")
    say(f"calls at the stand-in services: {services.calls or 'none'}")
    trace_id = status.get("traceId")
    if trace_id:
        show_trace(jaeger, trace_id)
    usage_table(cluster)


def serve_services(stack: ExitStack, host: str) -> ColdChainServices:
    services = ColdChainServices(host)
    threading.Thread(target=services.serve_forever, daemon=True).start()
    stack.callback(services.server_close)
    stack.callback(services.shutdown)
    return services


def on_testbed() -> None:
    """The fleet on the loopback testbed, the operator as a local process with the `local` executor."""
    if build.missing():
        build.ensure()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agency-demo-")))
        say("starting a control plane on loopback (etcd, kube-apiserver, kube-controller-manager)")
        testbed = Testbed.start(folder / "testbed")
        stack.callback(testbed.stop)
        say("starting Jaeger, the scripted model and the stand-in cold-chain services")
        jaeger = stack.enter_context(Jaeger())
        llm = stack.enter_context(ScriptedLLM())
        services = serve_services(stack, "127.0.0.1")

        say("installing the CRDs")
        testbed.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        kinds = ("agents", "agentpolicies", "agentschedules", "agentruns")
        testbed.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{k}.agency.dev" for k in kinds)
        )
        testbed.kubectl("create", "namespace", NAMESPACE)

        say("starting the operator (local executor)")
        stack.enter_context(operator_process(testbed, folder, jaeger.otlp_http_endpoint))
        play(testbed, jaeger, llm, services, chart=False)
        say("stopping everything")


def on_kind(docker: str, kind: str) -> None:
    """The fleet on a kind cluster: the image built here, the chart installed with the `pod` executor."""
    if build.missing():
        build.ensure()  # kubectl and helm come from the testbed's build
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agency-demo-kind-")))
        say(f"docker build -t {demo_kind.IMAGE} . (the Dockerfile's operator and runtime image)")
        demo_kind.build_image(docker, REPO)
        say(f"kind create cluster --name {demo_kind.CLUSTER}")
        cluster = KindCluster.create(kind, demo_kind.CLUSTER, folder, build.bin_dir())
        stack.callback(cluster.delete)
        stack.callback(say, f"kind delete cluster --name {demo_kind.CLUSTER}")
        cluster.load_image(demo_kind.IMAGE)
        gateway = demo_kind.docker_gateway(docker)
        say(f"starting Jaeger, the scripted model and the stand-in services on {gateway} (the kind network)")
        jaeger = stack.enter_context(Jaeger(otlp_host=gateway))
        llm = stack.enter_context(ScriptedLLM(host=gateway))
        services = serve_services(stack, gateway)
        cluster.kubectl("create", "namespace", NAMESPACE)
        say("helm install agency charts/agency (executor pod)")
        values = demo_kind.kind_values(
            demo_kind.IMAGE_REPOSITORY, demo_kind.IMAGE_TAG, jaeger.otlp_http_endpoint, NAMESPACE
        )
        try:
            cluster.helm_install(REPO / "charts" / "agency", values, folder)
            play(cluster, jaeger, llm, services, chart=True)
        except BaseException:
            say(f"the operator's log:\n{cluster.operator_log()}")
            raise
        say("stopping everything")


def main() -> int:
    try:
        target = demo_kind.choose_target(os.environ)
        if target is Target.KIND:
            say("Docker and kind found: the demo runs on a kind cluster (AGENCY_DEMO_TARGET=testbed to skip)")
            on_kind(shutil.which("docker") or "docker", shutil.which("kind") or "kind")
        else:
            on_testbed()
    except DemoError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    say("done")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    sys.exit(main())
