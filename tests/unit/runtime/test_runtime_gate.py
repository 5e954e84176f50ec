"""The policy gate decides per call: act, notify, propose or deny, and says why."""

from __future__ import annotations

import pytest

from agency_runtime.api.common import Risk
from agency_runtime.tools.gate import Decision, decide
from unit.runtime.runtime_support import policy


def test_without_a_policy_a_local_run_acts() -> None:
    assert decide("anything", Risk.DESTRUCTIVE, None).decision is Decision.ACT


@pytest.mark.parametrize(
    ("risk", "expected"),
    [
        (Risk.READ_ONLY, Decision.ACT),
        (Risk.IDEMPOTENT, Decision.PROPOSE),
        (Risk.DESTRUCTIVE, Decision.PROPOSE),
    ],
)
def test_default_policy_acts_on_reads_and_proposes_changes(risk: Risk, expected: Decision) -> None:
    assert decide("tool", risk, policy()).decision is expected


def test_denied_wins_over_allowed_and_names_the_pattern() -> None:
    result = decide("delete_pod", Risk.READ_ONLY, policy(tools={"allowed": ["*"], "denied": ["delete_*"]}))

    assert result.decision is Decision.DENY
    assert "'delete_*'" in result.reason


def test_a_tool_rule_overrides_risk_and_autonomy() -> None:
    governed = policy(tools={"rules": [{"name": "restart", "risk": "read-only"}]})
    by_risk = decide("restart", Risk.DESTRUCTIVE, governed)
    notify = decide(
        "page", Risk.READ_ONLY, policy(tools={"rules": [{"name": "page", "autonomy": {"level": "notify"}}]})
    )

    assert (by_risk.decision, by_risk.risk) == (Decision.ACT, Risk.READ_ONLY)
    assert notify.decision is Decision.NOTIFY
    assert "tool rule 'page'" in notify.reason


def test_act_with_rollback_required_proposes_calls_that_cannot_be_undone() -> None:
    governed = policy(autonomy={"destructive": {"level": "act", "rollback": "Required"}})

    assert decide("drop", Risk.DESTRUCTIVE, governed, can_undo=False).decision is Decision.PROPOSE
    assert decide("drop", Risk.DESTRUCTIVE, governed, can_undo=True).decision is Decision.ACT
