"""A run stopped to wait for an approval keeps its identity and continues in a new process once decided."""

from __future__ import annotations

import json
from typing import Any

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    OperatorFactory,
    agent,
    api_get,
    apply,
    condition,
    finish_pod,
    policy,
    run,
    run_path,
    secret,
    wait_for,
    wait_for_phase,
)

ADMIN = "agency-testbed-admin"  # the testbed's kubectl user: decisions are recorded under the decider's name


def _approve(kubectl: Kubectl, namespace: str, proposal: str = "p1") -> None:
    decision = {"proposalId": proposal, "decision": "Approved", "by": ADMIN, "at": "2026-01-01T00:00:00Z"}
    kubectl(
        "patch",
        "agentrun",
        "r1",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"approvals": [decision]}}),
    )


def test_local_run_waiting_for_approval_keeps_its_identity_and_continues_once_approved(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    ask: dict[str, Any] = {
        "phase": "WaitingForApproval",
        "proposal": {"proposalId": "p1"},
        "afterApproval": {"phase": "Succeeded", "result": "dispatched", "steps": 2},
    }
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace, ask=ask))
    operator.start(executor="local", env=STUB_ENV)
    status = wait_for_phase(testbed, namespace, "r1", "WaitingForApproval")
    ready = condition(status, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "WaitingForApproval")
    assert "p1" in ready["message"]
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is not None
    assert "completionTime" not in status

    _approve(kubectl, namespace)
    status = wait_for_phase(testbed, namespace, "r1", "Succeeded")
    assert status["result"] == "dispatched"
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    starts = (operator.workdir / namespace / f"r1-{uid}" / "starts.log").read_text().split()
    assert len(starts) == 2, "one process before the decision, one after"
    wait_for(
        lambda: api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is None,
        30,
        "the identity to go once the run finished",
    )


def test_pod_run_continues_after_approval_in_a_second_pod(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace))
    operator.start(executor="pod")
    wait_for(lambda: api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/r1"), 60, "the first Pod")
    finish_pod(
        testbed, namespace, {"phase": "WaitingForApproval", "proposal": {"proposalId": "p1"}, "steps": 1}
    )
    wait_for_phase(testbed, namespace, "r1", "WaitingForApproval")
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/r1-1") is None

    _approve(kubectl, namespace)
    wait_for(lambda: api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/r1-1"), 60, "the second Pod")
    second = api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/r1-1")
    assert second is not None
    assert second["metadata"]["labels"]["agency.dev/attempt"] == "1"
    assert second["spec"]["serviceAccountName"] == "agency-run-r1"
    finish_pod(testbed, namespace, {"phase": "Succeeded", "result": "dispatched", "steps": 2}, name="r1-1")
    status = wait_for_phase(testbed, namespace, "r1", "Succeeded")
    assert (status["result"], status["stepCount"]) == ("dispatched", 2)


def test_policy_approvers_may_approve_and_others_may_not(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    approvers = {"approvers": [{"kind": "ServiceAccount", "name": "dispatcher", "namespace": namespace}]}
    kubectl("create", "serviceaccount", "dispatcher", "-n", namespace)
    kubectl("create", "serviceaccount", "bystander", "-n", namespace)
    apply(kubectl, secret(namespace), policy(namespace, approvals=approvers))
    operator.start(executor="local", env=STUB_ENV)
    binding = (
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/agency-approvers-default"
    )
    wait_for(lambda: api_get(testbed, binding), 30, "the approvers' RoleBinding")

    def can_approve(account: str) -> str:
        return kubectl(
            "auth",
            "can-i",
            "approve",
            "agentruns.agency.dev",
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:{account}",
            check=False,
        ).stdout.strip()

    assert can_approve("dispatcher") == "yes"
    assert can_approve("bystander") == "no"
