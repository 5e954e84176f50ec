from __future__ import annotations

from datetime import UTC, datetime, timedelta

from operator_objects import run_obj

from agency_operator.runs import undecided


def _ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_run_waits_on_proposals_not_yet_decided() -> None:
    status = {"pendingApprovals": [{"proposalId": "p1", "requestedAt": _ago(10)}]}
    assert undecided(run_obj(), status, {}, timeout=3600) == ["p1"]


def test_decided_proposal_no_longer_holds_the_run() -> None:
    decided = run_obj(
        approvals=[{"proposalId": "p1", "decision": "Rejected", "by": "dana", "at": "2026-01-01T00:00:00Z"}]
    )
    status = {"pendingApprovals": [{"proposalId": "p1", "requestedAt": _ago(10)}]}
    assert undecided(decided, status, {}, timeout=3600) == []


def test_expired_proposal_no_longer_holds_the_run() -> None:
    status = {"pendingApprovals": [{"proposalId": "p1", "requestedAt": _ago(120)}]}
    assert undecided(run_obj(), status, {}, timeout=60) == []


def test_proposal_named_only_in_the_result_holds_the_run() -> None:
    assert undecided(run_obj(), {}, {"proposal": {"proposalId": "p2"}}, timeout=60) == ["p2"]
