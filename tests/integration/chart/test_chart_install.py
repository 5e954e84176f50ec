"""`helm install` of the chart into the testbed: what the API server accepts, and what it then allows.

The testbed has no kubelet, so the operator Pod is created by the Deployment's controllers but never
runs; running an Agent to success through the chart comes with the local executor. What is checked here
is real all the same: the release deploys, the operator Pod passes the namespace's `restricted` Pod
Security admission, and the RBAC authorizer gives the operator's ServiceAccount exactly the rights the
chart claims (it can give a run its identity without `escalate`, and bind only the listed roles).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agency_operator.identity import (
    build_role,
    build_role_bindings,
    build_self_binding,
    build_service_account,
)
from agency_runtime.api.policy import AgentPolicy
from agency_testbed.build import bin_dir
from agency_testbed.cluster import Testbed

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "agency"
AGENT_ROLES = ("agency-agent-read-only", "agency-agent-namespace-writer")


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    notes: str = ""

    @property
    def service_account(self) -> str:
        """The chart's full name: the release name, since it contains the chart's name."""
        return self.name

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def helm(testbed: Testbed, *args: str) -> subprocess.CompletedProcess[str]:
    binary = bin_dir() / "helm"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make testbed-build`")
    return subprocess.run(
        [str(binary), *args], env=testbed.env(), capture_output=True, text=True, timeout=180, check=False
    )


def install(testbed: Testbed, release: Release, *values: str) -> str:
    """Install the chart; returns what `helm install` printed (the release notes)."""
    args = [a for v in values for a in ("--set", v)]
    proc = helm(testbed, "install", release.name, str(CHART), "--namespace", release.namespace, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def get_json(testbed: Testbed, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(testbed.kubectl("get", *args, "-o", "json").stdout)
    return out


def exists(testbed: Testbed, *args: str) -> bool:
    return testbed.kubectl("get", *args, "-o", "name", check=False).returncode == 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def can_i(testbed: Testbed, release: Release, *args: str) -> bool:
    proc = testbed.kubectl("auth", "can-i", *args, f"--as={release.user}", check=False)
    assert proc.stdout.strip() in {"yes", "no"}, proc.stderr
    return proc.stdout.strip() == "yes"


@pytest.fixture(scope="module")
def release(testbed: Testbed) -> Iterator[Release]:
    """The chart installed with its defaults plus a default policy, in a namespace that enforces the
    `restricted` Pod Security profile; uninstalled at the end."""
    suffix = secrets.token_hex(3)
    rel = Release(name=f"agency-{suffix}", namespace=f"agency-system-{suffix}")
    testbed.kubectl("create", "namespace", rel.namespace)
    testbed.kubectl(
        "label", "namespace", rel.namespace, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    notes = install(testbed, rel, "defaultPolicy.create=true")
    try:
        yield Release(rel.name, rel.namespace, notes)
    finally:
        helm(testbed, "uninstall", rel.name, "--namespace", rel.namespace)
        testbed.kubectl("delete", "namespace", rel.namespace, "--wait=false", check=False)


def test_chart_installs_as_a_deployed_release(testbed: Testbed, release: Release) -> None:
    proc = helm(testbed, "status", release.name, "--namespace", release.namespace, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["info"]["status"] == "deployed"


def test_install_notes_say_how_to_check_the_operator_and_upgrade_crds(release: Release) -> None:
    assert f"rollout status deployment/{release.name}" in release.notes
    assert "kubectl apply --server-side" in release.notes
    assert "agency-agent-read-only, agency-agent-namespace-writer" in release.notes


def test_installed_operator_deployment_runs_one_replica_with_recreate(
    testbed: Testbed, release: Release
) -> None:
    deployment = get_json(testbed, "deployment", release.name, "-n", release.namespace)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == release.service_account


def test_operator_pod_is_admitted_under_the_restricted_pod_security_profile(
    testbed: Testbed, release: Release
) -> None:
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component=operator"

    def pod_created() -> bool:
        out = testbed.kubectl("get", "pods", "-n", release.namespace, "-l", selector, "-o", "name").stdout
        return bool(out.strip())

    # The control: this namespace really refuses a Pod that is not restricted.
    plain = testbed.kubectl(
        "run", "plain", "--image=busybox", "--dry-run=server", "-n", release.namespace, check=False
    )
    assert "violates PodSecurity" in plain.stderr, plain.stderr
    wait_for(pod_created, "the ReplicaSet to create the operator Pod under enforce=restricted")
    events = testbed.kubectl("get", "events", "-n", release.namespace, "-o", "json").stdout
    assert "violates PodSecurity" not in events


def test_installed_objects_are_all_there(testbed: Testbed, release: Release) -> None:
    ns = release.namespace
    assert exists(testbed, "serviceaccount", release.service_account, "-n", ns)
    assert exists(testbed, "clusterrole", release.name)
    assert exists(testbed, "clusterrolebinding", release.name)
    assert exists(testbed, "service", f"{release.name}-metrics", "-n", ns)
    assert exists(testbed, "service", f"{release.name}-signals", "-n", ns)
    for role in AGENT_ROLES:
        assert exists(testbed, "clusterrole", role)
    for crd in ("agents", "agentpolicies", "agentschedules", "agentruns"):
        assert exists(testbed, "crd", f"{crd}.agency.dev")
    policy = get_json(testbed, "agentpolicy", "default", "-n", ns)
    assert policy["spec"]["identity"]["clusterRoles"] == [{"name": "agency-agent-read-only"}]


def test_operator_may_bind_the_listed_agent_roles_and_nothing_else(
    testbed: Testbed, release: Release
) -> None:
    for role in AGENT_ROLES:
        assert can_i(testbed, release, "bind", f"clusterroles/{role}")
    assert not can_i(testbed, release, "bind", "clusterroles/cluster-admin")
    assert not can_i(testbed, release, "bind", "clusterroles/edit")
    assert not can_i(testbed, release, "escalate", "clusterroles")
    assert not can_i(testbed, release, "escalate", "roles", "-n", "default")


def test_operator_reads_secrets_by_name_but_cannot_list_them_or_mint_tokens(
    testbed: Testbed, release: Release
) -> None:
    assert can_i(testbed, release, "get", "secrets", "-n", "default")
    assert not can_i(testbed, release, "list", "secrets", "-n", "default")
    # (`serviceaccounts/token` would read as the ServiceAccount named "token": ask for the subresource.)
    assert not can_i(
        testbed, release, "create", "serviceaccounts", "--subresource=token", "-n", "kube-system"
    )
    assert not can_i(testbed, release, "create", "clusterrolebindings")


def _run_in(testbed: Testbed, namespace: str) -> dict[str, Any]:
    run = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {"name": "chart-identity", "namespace": namespace},
        "spec": {"agentRef": {"name": "cold-chain-monitor"}, "input": "check the identity"},
    }
    testbed.kubectl("create", "-f", "-", stdin=json.dumps(run))
    return get_json(testbed, "agentrun", "chart-identity", "-n", namespace)


def test_operator_gives_a_run_its_identity_without_escalate(
    testbed: Testbed, release: Release, namespace: str
) -> None:
    run = _run_in(testbed, namespace)
    policy = AgentPolicy.model_validate(
        {
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"identity": {"clusterRoles": [{"name": AGENT_ROLES[0]}]}},
        }
    )
    objects = [
        build_service_account(run),
        build_role(run),
        build_self_binding(run),
        *build_role_bindings(run, policy),
    ]
    proc = testbed.kubectl(
        "create", "-f", "-", f"--as={release.user}", stdin=yaml.safe_dump_all(objects), check=False
    )
    assert proc.returncode == 0, proc.stderr
    kinds = sorted(line.split("/")[0] for line in proc.stdout.split("\n") if line)
    assert kinds == sorted(
        ["serviceaccount", "role.rbac.authorization.k8s.io"] + ["rolebinding.rbac.authorization.k8s.io"] * 2
    )


def test_operator_cannot_bind_a_run_to_a_role_outside_the_list(
    testbed: Testbed, release: Release, namespace: str
) -> None:
    run = _run_in(testbed, namespace)
    policy = AgentPolicy.model_validate(
        {
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"identity": {"clusterRoles": [{"name": "cluster-admin"}]}},
        }
    )
    binding = build_role_bindings(run, policy)[0]
    proc = testbed.kubectl(
        "create", "-f", "-", f"--as={release.user}", stdin=json.dumps(binding), check=False
    )
    assert proc.returncode != 0
    assert "forbidden" in proc.stderr.lower()
    assert "cluster-admin" in proc.stderr


def test_uninstall_removes_the_operator_and_its_cluster_wide_rbac(testbed: Testbed, namespace: str) -> None:
    rel = Release(name=f"agency-{secrets.token_hex(3)}", namespace=namespace)
    # The example agent roles belong to the module's release; a second install must not claim them.
    install(testbed, rel, "rbac.createAgentClusterRoles=false")
    assert exists(testbed, "clusterrole", rel.name)
    proc = helm(testbed, "uninstall", rel.name, "--namespace", namespace)
    assert proc.returncode == 0, proc.stderr

    def gone() -> bool:
        return not any(
            exists(testbed, *args)
            for args in (
                ("clusterrole", rel.name),
                ("clusterrolebinding", rel.name),
                ("deployment", rel.name, "-n", namespace),
                ("serviceaccount", rel.service_account, "-n", namespace),
            )
        )

    wait_for(gone, f"release {rel.name}'s objects to be deleted")
    assert helm(testbed, "status", rel.name, "--namespace", namespace).returncode != 0
