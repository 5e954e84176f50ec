"""The operator needs only `rbac.build_operator_cluster_role`: no `escalate`, `bind` on listed roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    OperatorFactory,
    agent,
    api_get,
    apply,
    condition,
    policy,
    run,
    run_path,
    secret,
    wait_for,
    wait_for_phase,
)
from agency_testbed.operator_login import operator_login
from agency_testbed.procs import free_port


@pytest.fixture
def operator_kubeconfig(testbed: Testbed, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig of a ServiceAccount bound to the operator's ClusterRole (binding only `view`)."""
    with operator_login(testbed, namespace, tmp_path, bindable=["view"], hours=1) as path:
        yield path


def test_operator_with_only_its_documented_role_runs_a_governed_run(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, operator_kubeconfig: Path
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, identity={"clusterRoles": [{"name": "view"}]}),
        agent(namespace),
        run(namespace, ask={"wait": True}),
    )
    operator.start(executor="local", env=STUB_ENV, kubeconfig=operator_kubeconfig)
    wait_for_phase(testbed, namespace, "r1", "Running")
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    folder = operator.workdir / namespace / f"r1-{uid}"
    with testbed.http(token=(folder / "token").read_text()) as http:
        assert (
            http.get(f"/api/v1/namespaces/{namespace}/pods").status_code == 200
        )  # `view`, bound by the operator
    (folder / "release").touch()
    status = wait_for_phase(testbed, namespace, "r1", "Succeeded")
    assert (condition(status, "IdentityReady") or {}).get("reason") == "Revoked"


def test_operator_cannot_grant_a_cluster_role_it_may_not_bind(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, operator_kubeconfig: Path
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, identity={"clusterRoles": [{"name": "admin"}]}),
        agent(namespace),
        run(namespace),
    )
    operator.start(executor="local", env=STUB_ENV, kubeconfig=operator_kubeconfig)

    def refused() -> dict[str, Any]:
        status = (api_get(testbed, run_path(namespace, "r1")) or {}).get("status") or {}
        return condition(status, "IdentityReady") or {}

    wait_for(
        lambda: refused().get("reason") == "IdentityForbidden", 30, "the run to report its identity refused"
    )
    assert "admin" in refused()["message"]
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/agency-run-r1-admin"
    assert api_get(testbed, path) is None
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/r1") is None
    assert ((api_get(testbed, run_path(namespace, "r1")) or {}).get("status") or {}).get("phase") == "Pending"


def test_operator_with_only_its_documented_role_manages_the_admission_webhook(
    operator: OperatorFactory,
    operator_kubeconfig: Path,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, budgets={"perRun": {"maxTokens": 1000}}),
        agent(namespace),
    )
    port = free_port()
    process = operator.start(
        executor="local",
        env={**STUB_ENV, "AGENCY_WEBHOOK_PORT": str(port), "AGENCY_WEBHOOK_HOST": "127.0.0.1"},
        kubeconfig=operator_kubeconfig,
    )
    greedy = json.dumps(run(namespace, budget={"maxTokens": 5000}))

    def refusal() -> str:
        proc = kubectl("apply", "--dry-run=server", "-f", "-", stdin=greedy, check=False)
        return proc.stderr if proc.returncode else ""

    # Refused only once the operator has created and patched the webhook configuration with its role.
    wait_for(refusal, 60, "the webhook configuration, made with the operator's role", process.log_tail)
    assert "spec.budget.maxTokens: 5000 is above the policy default's per-run limit 1000" in refusal()
