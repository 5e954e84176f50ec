"""`kubectl agency approve|reject`: decisions recorded under the caller's own name, refused readably
for someone without the approve verb. The run's status is written as the operator would."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agency_runtime.kubectl.client import Api, run_path
from agency_runtime.kubectl.decide import JSON_PATCH, RETRIED_STATUS, decision_entry, patch_ops
from agency_runtime.kubectl.kubeconfig import load
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import apply, run
from integration.kubectl.kubectl_plugin import ADMIN, Plugin, agent_run, person, set_status


def _proposal(proposal_id: str) -> dict[str, Any]:
    return {
        "proposalId": proposal_id,
        "tool": "http_request",
        "argumentsSummary": "DELETE /cache",
        "risk": "destructive",
        "requestedAt": "2026-01-01T00:00:00Z",
    }


def _waiting(testbed: Testbed, namespace: str, *proposals: str) -> None:
    set_status(
        testbed,
        namespace,
        "r1",
        {"phase": "WaitingForApproval", "pendingApprovals": [_proposal(p) for p in proposals]},
    )


def test_approver_decisions_are_recorded_under_their_own_name_first_creating_then_growing_the_list(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    apply(kubectl, run(namespace))
    assert "approvals" not in agent_run(testbed, namespace, "r1")["spec"]
    _waiting(testbed, namespace, "p1")
    approver = person(testbed, namespace, "approver", ["get", "patch", "approve"], tmp_path)
    user = f"system:serviceaccount:{namespace}:approver"

    approved = plugin("approve", "r1", kubeconfig=approver)  # the only proposal; the context's namespace

    assert approved.returncode == 0, approved.stderr
    assert approved.stdout == f"Approved proposal p1 of AgentRun r1 in namespace {namespace} as {user}\n"
    _waiting(testbed, namespace, "p1", "p2")

    rejected = plugin("reject", "r1", "--reason", "not during the audit", kubeconfig=approver)

    assert rejected.returncode == 0, rejected.stderr
    decisions = agent_run(testbed, namespace, "r1")["spec"]["approvals"]
    assert [(d["proposalId"], d["decision"], d["by"], d.get("reason")) for d in decisions] == [
        ("p1", "Approved", user, None),
        ("p2", "Rejected", user, "not during the audit"),
    ]

    again = plugin("approve", "r1", "--proposal", "p2", kubeconfig=approver)
    assert again.returncode == 2
    assert f"proposal p2 of AgentRun r1 was already decided: Rejected by {user}" in again.stderr


def test_someone_without_the_approve_verb_is_told_to_ask_for_it(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    apply(kubectl, run(namespace))
    _waiting(testbed, namespace, "p1")
    bystander = person(testbed, namespace, "bystander", ["get", "patch"], tmp_path)

    refused = plugin("approve", "r1", kubeconfig=bystander)

    assert refused.returncode == 2
    assert (
        f"error: you (system:serviceaccount:{namespace}:bystander) are not allowed to approve runs in "
        f"namespace {namespace}: ask for the approve verb on agentruns"
    ) in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "approvals" not in agent_run(testbed, namespace, "r1")["spec"]


def test_several_waiting_proposals_need_one_named(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, run(namespace))
    _waiting(testbed, namespace, "p1", "p2")

    ambiguous = plugin("reject", "r1", "-n", namespace)

    assert ambiguous.returncode == 2
    assert "AgentRun r1 has 2 proposals waiting (p1, p2): pass --proposal ID" in ambiguous.stderr


def test_a_first_decision_from_a_stale_read_never_replaces_one_recorded_meanwhile(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, run(namespace))
    _waiting(testbed, namespace, "p1", "p2")
    stale = agent_run(testbed, namespace, "r1")  # read before anyone decided: no spec.approvals yet
    assert plugin("approve", "r1", "--proposal", "p1", "-n", namespace).returncode == 0

    entry = decision_entry("p2", "Rejected", ADMIN, datetime.now(UTC), None)
    with Api(load(str(testbed.kubeconfig))) as api:
        late = api.send("PATCH", run_path(namespace, "r1"), json=patch_ops(stale, entry), headers=JSON_PATCH)

    assert late.status_code == RETRIED_STATUS, late.text
    decisions = agent_run(testbed, namespace, "r1")["spec"]["approvals"]
    assert [d["proposalId"] for d in decisions] == ["p1"]
