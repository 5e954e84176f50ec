"""`helm install` of the chart, then an Agent applied and run through to success.

The testbed has no kubelet, so the Pod of the chart's Deployment is created but stays Pending. What the
kubelet would do is done here by hand, as faithfully as a host allows, and nothing else:

- the operator runs as the chart's ServiceAccount: its kubeconfig holds a token from `kubectl create
  token <chart SA>` (the kubelet projects the same kind of token), so every request it makes is judged
  by the chart's RBAC, not the testbed admin's;
- its command and environment are read from the installed Deployment (`kubectl get deploy -o json`):
  the container's `command` and `args` (with `python` being this virtualenv's interpreter, as the
  image's PATH makes it the image's venv), and every `env` entry, `valueFrom` resolved as the kubelet
  resolves it (Secret and ConfigMap keys read from the release namespace, `fieldRef` from the Pod);
- its liveness is probed where the Deployment's `livenessProbe` points.

Values differ from the defaults only where a host needs it: `executor=local` (no kubelet to run run Pods),
ports chosen free on loopback (metrics, liveness, signals: other tests share the host), the local
workdir in the test's folder, `watchNamespaces` = the namespace of the Agent, and the admission webhook
off (the operator would register the cluster-wide `agency.dev` webhook pointing at a Service no Pod
backs, under every other test of the session).
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agency_testbed.build import bin_dir
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
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
from agency_testbed.llm_script import reply
from agency_testbed.procs import alive, free_port, log_tail, start, stop

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "agency"
AGENT_ROLE = "agency-agent-read-only"
MODEL = "openai/gpt-4o-mini"  # a conversation of the scripted model that litellm prices offline
JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    ports: dict[str, int]


def helm(testbed: Testbed, *args: str) -> subprocess.CompletedProcess[str]:
    binary = bin_dir() / "helm"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make testbed-build`")
    return subprocess.run(
        [str(binary), *args], env=testbed.env(), capture_output=True, text=True, timeout=180, check=False
    )


def service_account_kubeconfig(server: str, ca_file: Path, token: str) -> JsonDict:
    """A kubeconfig that logs in with `token` only: what the in-cluster config of a Pod amounts to."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "testbed", "user": "operator"}}],
        "current-context": "operator",
    }


def resolve_env(
    env: list[JsonDict], pod: JsonDict, read_key: Callable[[str, str, str], str | None]
) -> tuple[dict[str, str], list[str]]:
    """A container's `env` as the kubelet makes it: literal values, and `valueFrom` resolved from the Pod
    (`fieldRef`) or from a Secret / ConfigMap key (`read_key(kind, name, key)`). Returns the variables and
    the names of those the kubelet would leave out (an optional key that is missing)."""
    out: dict[str, str] = {}
    left_out: list[str] = []
    for var in env:
        name = var["name"]
        if "valueFrom" not in var:
            out[name] = str(var.get("value", ""))
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            fields = {
                "metadata.name": pod["metadata"]["name"],
                "metadata.namespace": pod["metadata"]["namespace"],
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
            }
            if path not in fields:
                raise ValueError(f"env {name}: fieldRef {path} has no host equivalent in this test")
            out[name] = fields[path]
            continue
        kind = "secret" if "secretKeyRef" in source else "configmap" if "configMapKeyRef" in source else None
        if kind is None:
            raise ValueError(f"env {name}: valueFrom {sorted(source)} has no host equivalent in this test")
        ref = source["secretKeyRef" if kind == "secret" else "configMapKeyRef"]
        value = read_key(kind, ref["name"], ref["key"])
        if value is None:
            if not ref.get("optional", False):
                raise ValueError(f"env {name}: {kind} {ref['name']} has no key {ref['key']}")
            left_out.append(name)
        else:
            out[name] = value
    return out, left_out


def container_argv(container: JsonDict) -> list[str]:
    """The container's command and args; `python` is this interpreter (the image's PATH finds its venv)."""
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv, "the operator container names no command"
    return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]


@pytest.fixture
def release(testbed: Testbed, agency_crds: list[str], namespace: str, tmp_path: Path) -> Iterator[Release]:
    """The chart installed into its own namespace, watching the test's namespace; uninstalled at the end."""
    suffix = secrets.token_hex(3)
    rel = Release(
        name=f"agency-{suffix}",
        namespace=f"agency-system-{suffix}",
        ports={"metrics": free_port(), "liveness": free_port(), "signals": free_port()},
    )
    testbed.kubectl("create", "namespace", rel.namespace)
    # The example agent ClusterRoles belong to one release per cluster: make them only if none has.
    own_roles = testbed.kubectl("get", "clusterrole", AGENT_ROLE, check=False).returncode != 0
    values = [
        "executor=local",
        f"watchNamespaces={{{namespace}}}",
        f"metrics.port={rel.ports['metrics']}",
        f"liveness.port={rel.ports['liveness']}",
        f"signals.port={rel.ports['signals']}",
        "webhook.enabled=false",
        f"runs.localWorkdir={tmp_path / 'runs'}",
        "reconcile.resyncSeconds=1",
        f"rbac.createAgentClusterRoles={str(own_roles).lower()}",
    ]
    args = [a for v in values for a in ("--set", v)]
    proc = helm(testbed, "install", rel.name, str(CHART), "--namespace", rel.namespace, *args)
    assert proc.returncode == 0, proc.stderr
    try:
        yield rel
    finally:
        helm(testbed, "uninstall", rel.name, "--namespace", rel.namespace)
        testbed.kubectl("delete", "namespace", rel.namespace, "--wait=false", check=False)


@pytest.fixture
def chart_operator(testbed: Testbed, release: Release, tmp_path: Path) -> Iterator[int]:
    """The operator process of the installed Deployment, run on the host as the kubelet would run it."""
    deployment = json.loads(
        testbed.kubectl("get", "deploy", release.name, "-n", release.namespace, "-o", "json").stdout
    )
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod_spec["containers"] if c["name"] == "operator"]
    pod = {"metadata": {"name": f"{release.name}-host", "namespace": release.namespace}, "spec": pod_spec}

    def read_key(kind: str, name: str, key: str) -> str | None:
        found = api_get(testbed, f"/api/v1/namespaces/{release.namespace}/{kind}s/{name}")
        if found is None or key not in (found.get("data") or {}):
            return None
        value: str = found["data"][key]
        return base64.b64decode(value).decode() if kind == "secret" else value

    env, left_out = resolve_env(container.get("env", []), pod, read_key)
    assert not left_out, f"optional env the kubelet would leave out: {left_out}"
    token = testbed.kubectl(
        "create", "token", pod_spec["serviceAccountName"], "-n", release.namespace, "--duration=1h"
    ).stdout.strip()
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(service_account_kubeconfig(testbed.server, testbed.folder / "pki" / "ca.crt", token))
    )
    # The image's own environment (PATH to its venv) plus the container's, and the mounted credentials.
    process_env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        **env,
        "KUBECONFIG": str(kubeconfig),
    }
    log = tmp_path / "operator.log"
    pid = start(container_argv(container), log, env=process_env)

    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = ports[probe["port"]] if isinstance(probe["port"], str) else probe["port"]
    liveness = f"http://127.0.0.1:{port}{probe['path']}"

    def live() -> bool:
        if not alive(pid):
            raise RuntimeError(f"the operator exited at startup:{log_tail(log, 40)}")
        try:
            return httpx.get(liveness, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(live, 60, "the operator's liveness probe", lambda: log_tail(log, 40))
    try:
        yield pid
    finally:
        stop(pid)


def test_chart_installed_operator_runs_an_agent_to_success_and_revokes_its_identity(
    testbed: Testbed,
    kubectl: Kubectl,
    namespace: str,
    scripted_llm: ScriptedLLM,
    chart_operator: int,
    release: Release,
) -> None:
    scripted_llm.script("gpt-4o-mini", [reply("All 12 reefers are within range.", usage=(1200, 40))])
    the_agent = agent(namespace, model=MODEL)
    the_agent["spec"]["model"]["apiBase"] = scripted_llm.base_url
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, models={"allowed": [MODEL]}, identity={"clusterRoles": [{"name": AGENT_ROLE}]}),
        the_agent,
        run(namespace, "check-reefers", input="Check the reefers."),
    )

    wait_for(
        lambda: run_status(testbed, namespace, "check-reefers").get("phase") in ("Succeeded", "Failed"),
        120,
        "the run to finish",
        lambda: f" (status now: {run_status(testbed, namespace, 'check-reefers')})",
    )
    status = run_status(testbed, namespace, "check-reefers")
    assert status["phase"] == "Succeeded", status
    assert status["result"] == "All 12 reefers are within range."
    assert status["usage"]["inputTokens"] == 1200
    assert status["usage"]["outputTokens"] == 40
    assert status["usage"]["totalTokens"] == 1240
    assert status["usage"]["costUSD"] > 0
    (request,) = scripted_llm.requests("gpt-4o-mini")
    assert [m["content"] for m in request["messages"] if m["role"] == "user"] == ["Check the reefers."]

    uid = api_get(testbed, run_path(namespace, "check-reefers"))["metadata"]["uid"]  # type: ignore[index]
    selector = f"agency.dev/run-uid={uid}"
    wait_for(
        lambda: (
            api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-check-reefers")
            is None
            and not api_list(testbed, "/apis/rbac.authorization.k8s.io/v1/rolebindings", selector)
            and not api_list(
                testbed, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", selector
            )
        ),
        30,
        "the run's ServiceAccount, Role and RoleBindings to be gone",
    )
    assert alive(chart_operator), "the operator kept running through the run"
