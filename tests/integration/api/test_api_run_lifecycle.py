"""An AgentRun is fixed once created; only approval decisions may be added, and never taken back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agency_runtime.api import AgentRun
from agency_testbed.cluster import Kubectl

pytestmark = pytest.mark.usefixtures("agency_crds")

SPEC: dict[str, Any] = {"agentRef": {"name": "cold-chain-monitor"}, "input": "Check container MSKU-4471."}
ADMIN = "agency-testbed-admin"
"""The testbed's kubectl user: decisions are recorded under the requester's own name (admission policy)."""
APPROVAL = {
    "proposalId": "dispatch-1",
    "decision": "Approved",
    "by": ADMIN,
    "at": "2025-03-01T10:00:00Z",
}


def _apply(kubectl: Kubectl, namespace: str, spec: dict[str, Any], *, check: bool = True) -> str:
    body = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {"name": "run-1"},
        "spec": spec,
    }
    result = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body), check=check)
    return result.stderr


@pytest.fixture
def run(kubectl: Kubectl, namespace: str) -> str:
    _apply(kubectl, namespace, SPEC)
    return namespace


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("agentRef", {"agentRef": {"name": "route-planner"}}),
        ("input", {"input": "Something else entirely."}),
        ("budget", {"budget": {"maxTokens": 1000}}),
        ("trigger", {"trigger": {"type": "Schedule"}}),
        ("parentRunRef", {"parentRunRef": {"name": "other-run"}}),
    ],
)
def test_changing_a_run_after_creation_is_refused_naming_the_field(
    kubectl: Kubectl, run: str, field: str, change: dict[str, Any]
) -> None:
    stderr = _apply(kubectl, run, {**SPEC, **change}, check=False)
    assert f"spec.{field}: Invalid value: cannot be changed after the AgentRun is created" in stderr
    assert "create a new AgentRun instead" in stderr


def test_removing_the_input_is_a_change_too(kubectl: Kubectl, run: str) -> None:
    stderr = _apply(kubectl, run, {"agentRef": SPEC["agentRef"]}, check=False)
    assert "spec.input: Invalid value: cannot be changed" in stderr


def test_an_approval_can_be_added_but_not_changed_or_removed(kubectl: Kubectl, run: str) -> None:
    _apply(kubectl, run, {**SPEC, "approvals": [APPROVAL]})
    stored = AgentRun.from_k8s(
        json.loads(kubectl("get", "agentrun", "run-1", "-n", run, "-o", "json").stdout)
    )
    assert [a.proposal_id for a in stored.spec.approvals] == ["dispatch-1"]

    changed = {**APPROVAL, "decision": "Rejected"}
    stderr = _apply(kubectl, run, {**SPEC, "approvals": [changed]}, check=False)
    assert "spec.approvals[0]: Forbidden: a recorded approval decision cannot be changed" in stderr

    stderr = _apply(kubectl, run, SPEC, check=False)
    assert "spec.approvals: Forbidden: can only grow: recorded decisions cannot be removed" in stderr

    second = {**APPROVAL, "proposalId": "dispatch-2", "decision": "Rejected", "reason": "Depot closed."}
    _apply(kubectl, run, {**SPEC, "approvals": [APPROVAL, second]})


def test_the_operator_can_still_write_status_of_a_run_with_approvals(kubectl: Kubectl, run: str) -> None:
    _apply(kubectl, run, {**SPEC, "approvals": [APPROVAL]})
    status = {
        "status": {
            "phase": "WaitingForApproval",
            "stepCount": 3,
            "usage": {"inputTokens": 1200, "outputTokens": 300, "totalTokens": 1500, "costUSD": 0.012},
            "pendingApprovals": [
                {
                    "proposalId": "dispatch-2",
                    "tool": "dispatch_technician",
                    "argumentsSummary": "containerId=MSKU-4471 depot=Rotterdam",
                    "risk": "destructive",
                    "requestedAt": "2025-03-01T10:05:00Z",
                }
            ],
        }
    }
    kubectl(
        "patch",
        "agentrun",
        "run-1",
        "-n",
        run,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    wide = kubectl("get", "agentrun", "run-1", "-n", run, "-o", "wide").stdout.splitlines()[1].split()
    assert wide[1:6] == ["cold-chain-monitor", "WaitingForApproval", "3", "1500", "0.012"]
    stored = AgentRun.from_k8s(
        json.loads(kubectl("get", "agentrun", "run-1", "-n", run, "-o", "json").stdout)
    )
    assert stored.status.pending_approvals[0].tool == "dispatch_technician"
