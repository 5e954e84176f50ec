"""Whose decision counts: Users and ServiceAccounts the policy names by user name; anyone RBAC let record a
decision when the policy names Groups (membership is not visible in a user name); nobody without approvers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.api.run import Approval, Decision
from agency_runtime.approvals import Outcome, judge, pending_approval

REQUESTED = 1_700_000_000.0
PROPOSAL: dict[str, Any] = {
    "proposalId": "p-1",
    "tool": "http_request",
    "arguments": '{"method": "DELETE"}',
    "risk": "destructive",
    "reason": "autonomy for destructive tools is propose",
    "requestedAt": REQUESTED,
}


def _policy(*approvers: dict[str, str]) -> AgentPolicySpec:
    return AgentPolicySpec.model_validate({"approvals": {"approvers": list(approvers)}})


def _by(user: str, decision: Decision = Decision.APPROVED) -> dict[str, Approval]:
    return {
        "p-1": Approval(proposal_id="p-1", decision=decision, by=user, at=datetime(2026, 1, 1, tzinfo=UTC))
    }


@pytest.mark.parametrize(
    ("approvers", "user", "outcome"),
    [
        ([{"kind": "User", "name": "dana"}], "dana", Outcome.APPROVED),
        ([{"kind": "User", "name": "dana"}], "eve", Outcome.WAITING),
        (
            [{"kind": "ServiceAccount", "name": "bot", "namespace": "ops"}],
            "system:serviceaccount:ops:bot",
            Outcome.APPROVED,
        ),
        (
            [{"kind": "ServiceAccount", "name": "bot", "namespace": "ops"}],
            "system:serviceaccount:dev:bot",
            Outcome.WAITING,
        ),
        ([{"kind": "Group", "name": "sre"}], "anyone-rbac-allowed", Outcome.APPROVED),
        ([], "dana", Outcome.WAITING),
    ],
)
def test_whose_decision_counts(approvers: list[dict[str, str]], user: str, outcome: Outcome) -> None:
    verdict = judge(PROPOSAL, _by(user), _policy(*approvers), now=REQUESTED + 10)

    assert verdict.outcome is outcome
    assert bool(verdict.ignored) is (outcome is Outcome.WAITING)


def test_a_rejection_by_an_approver_is_a_rejection_with_who_and_why() -> None:
    decisions = _by("dana", Decision.REJECTED)
    decisions["p-1"] = decisions["p-1"].model_copy(update={"reason": "Not during peak hours."})

    verdict = judge(
        PROPOSAL, decisions, _policy({"kind": "User", "name": "dana"}), now=PROPOSAL["requestedAt"]
    )

    assert (verdict.outcome, verdict.by) == (Outcome.REJECTED, "dana")
    assert verdict.told_to_model().startswith(
        "not executed: the call was rejected by dana: Not during peak hours."
    )


def test_a_proposal_is_shown_in_status_with_its_time_in_rfc3339() -> None:
    assert pending_approval(PROPOSAL) == {
        "proposalId": "p-1",
        "tool": "http_request",
        "argumentsSummary": '{"method": "DELETE"}',
        "risk": "destructive",
        "reason": "autonomy for destructive tools is propose",
        "requestedAt": "2023-11-14T22:13:20Z",
    }
