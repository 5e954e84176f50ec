"""`kubectl agency usage` sums what runs spent; every command fails with a sentence saying what to fix
when the cluster, the CRDs or the run are not there."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agency_runtime.kubectl.client import Api
from agency_runtime.kubectl.errors import CrdsMissing
from agency_runtime.kubectl.kubeconfig import load
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import apply, run
from agency_testbed.procs import free_port
from integration.kubectl.kubectl_plugin import Plugin, set_status


def _spent(testbed: Testbed, namespace: str, name: str, tokens: tuple[int, int], cost: float) -> None:
    usage = {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens), "costUSD": cost}
    set_status(testbed, namespace, name, {"phase": "Succeeded", "usage": usage})


def test_usage_table_sums_tokens_and_cost_by_agent_over_several_runs(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        run(namespace, "a1", agent_name="sorter"),
        run(namespace, "a2", agent_name="sorter"),
        run(namespace, "b1", agent_name="courier"),
        run(namespace, "b2", agent_name="courier"),
    )
    _spent(testbed, namespace, "a1", (1200, 40), 0.25)
    _spent(testbed, namespace, "a2", (800, 60), 0.5)
    _spent(testbed, namespace, "b1", (5000, 500), 1.125)  # b2 has not started: counted, nothing spent

    table = plugin("usage", "-n", namespace)

    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[1:4] == [
        [namespace, "courier", "2", "5,000", "500", "$1.125"],
        [namespace, "sorter", "2", "2,000", "100", "$0.75"],
        ["TOTAL", "4", "7,000", "600", "$1.875"],
    ]
    assert "Covers the 4 AgentRun(s) that still exist" in table.stdout

    everywhere = plugin("usage", "-A", "--agent", "courier")
    assert everywhere.returncode == 0, everywhere.stderr
    assert [namespace, "courier", "2", "5,000", "500", "$1.125"] in [
        r.split() for r in everywhere.stdout.splitlines()
    ]
    assert "sorter" not in everywhere.stdout


def test_unreachable_cluster_is_named_with_a_hint_about_kubeconfig(plugin: Plugin, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "me"}}],
        "current-context": "gone",
    }
    kubeconfig = tmp_path / "gone.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))

    failed = plugin("usage", kubeconfig=kubeconfig)

    assert failed.returncode == 2
    assert failed.stderr.startswith(f"error: cannot reach the Kubernetes API at {server}: ")
    assert "(is KUBECONFIG set?" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_missing_crds_are_named_with_how_to_install_them(testbed: Testbed, agency_crds: list[str]) -> None:
    # The testbed's API server is shared and has the CRDs: ask it for a group and a kind it does not serve.
    with Api(load(str(testbed.kubeconfig))) as api:
        with pytest.raises(CrdsMissing, match="the Agency CRDs are not installed in this cluster") as group:
            api.require_kind("agentruns", "absent.agency.dev/v1alpha1")
        with pytest.raises(CrdsMissing, match=r"CRD for widgets\.agency\.dev is not installed") as kind:
            api.require_kind("widgets")
        api.require_kind("agentruns")  # installed: no error
    assert "kubectl apply --server-side -f crds/" in str(group.value)
    assert "kubectl apply --server-side -f crds/" in str(kind.value)


def test_missing_run_and_missing_agent_name_the_namespace_searched(plugin: Plugin, namespace: str) -> None:
    no_run = plugin("trace", "nope", "-n", namespace)
    no_agent = plugin("run", "ghost", "--input", "hello", "-n", namespace)

    assert (no_run.returncode, no_agent.returncode) == (2, 2)
    assert no_run.stderr == f"error: AgentRun nope not found in namespace {namespace}\n"
    assert f"error: Agent ghost not found in namespace {namespace}" in no_agent.stderr


def test_trace_of_a_run_without_trace_id_says_so_and_env_url_gives_a_grafana_link(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, run(namespace))
    early = plugin("trace", "r1", "-n", namespace)
    assert early.returncode == 2
    assert f"AgentRun r1 in namespace {namespace} has no trace id yet (phase Pending)" in early.stderr

    trace_id = "0123456789abcdef0123456789abcdef"
    set_status(testbed, namespace, "r1", {"phase": "Running", "traceId": trace_id})
    linked = plugin(
        "trace", "r1", "-n", namespace, env={"AGENCY_TRACE_URL": "https://grafana.example/explore"}
    )

    assert linked.returncode == 0, linked.stderr
    first, link = linked.stdout.splitlines()
    assert first == trace_id
    assert link.startswith("https://grafana.example/explore?orgId=1&left=")
    assert trace_id in link


def test_logs_of_a_pod_that_has_not_started_say_there_is_no_log_yet(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, run(namespace))
    uid = kubectl("get", "agentrun", "r1", "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "r1",
            "namespace": namespace,
            "labels": {"agency.dev/run": "r1", "agency.dev/attempt": "0"},
            "ownerReferences": [
                {
                    "apiVersion": "agency.dev/v1alpha1",
                    "kind": "AgentRun",
                    "name": "r1",
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "runtime", "image": "agency:test"}]},
    }
    apply(kubectl, pod)  # the testbed has no scheduler or kubelet: the Pod stays Pending, with no log

    logs = plugin("logs", "r1", "-n", namespace)

    assert logs.returncode == 2
    assert logs.stderr.startswith("error: no log yet for Pod r1 of the run: ")
