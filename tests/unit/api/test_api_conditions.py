"""Condition helpers: one condition per type, and a transition time that means "the status changed"."""

from __future__ import annotations

from datetime import UTC, datetime

from agency_runtime.api import (
    ConditionStatus,
    get_condition,
    is_false,
    is_true,
    remove_condition,
    set_condition,
)
from agency_runtime.api.conditions import to_k8s

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 13, 0, 0, tzinfo=UTC)


def test_setting_a_new_condition_stamps_the_transition_time() -> None:
    conditions = set_condition(
        [], "Ready", True, "PolicyBound", "bound to cold-chain", observed_generation=2, at=T0
    )
    (ready,) = conditions
    assert ready.status is ConditionStatus.TRUE
    assert ready.last_transition_time == T0
    assert ready.observed_generation == 2


def test_rewriting_the_same_status_keeps_the_transition_time_but_updates_reason_and_message() -> None:
    first = set_condition([], "Ready", False, "PolicyNotFound", "no policy", at=T0)
    second = set_condition(first, "Ready", False, "PolicyAmbiguous", "two policies match", at=T1)
    (ready,) = second
    assert ready.last_transition_time == T0
    assert (ready.reason, ready.message) == ("PolicyAmbiguous", "two policies match")


def test_changing_the_status_moves_the_transition_time() -> None:
    first = set_condition([], "Ready", False, "PolicyNotFound", at=T0)
    second = set_condition(first, "Ready", True, "PolicyBound", at=T1)
    assert second[0].last_transition_time == T1


def test_other_conditions_keep_their_place_and_values() -> None:
    conditions = set_condition([], "Ready", True, "Ok", at=T0)
    conditions = set_condition(conditions, "CredentialsFound", True, "SecretPresent", at=T0)
    conditions = set_condition(conditions, "Ready", False, "SecretMissing", at=T1)
    assert [c.type for c in conditions] == ["Ready", "CredentialsFound"]
    assert get_condition(conditions, "CredentialsFound") == conditions[1]
    assert conditions[1].last_transition_time == T0


def test_helpers_read_the_dicts_found_in_an_object_body() -> None:
    body_conditions = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ok",
            "message": "",
            "lastTransitionTime": "2025-01-01T12:00:00Z",
        }
    ]
    assert is_true(body_conditions)
    assert not is_false(body_conditions)
    updated = set_condition(body_conditions, "Ready", "Unknown", "Checking", at=T1)
    assert not is_true(updated)
    assert not is_false(updated)
    assert updated[0].last_transition_time == T1


def test_missing_conditions_are_neither_true_nor_false() -> None:
    assert get_condition([], "Ready") is None
    assert not is_true([])
    assert not is_false([])


def test_remove_condition_drops_only_that_type() -> None:
    conditions = set_condition(
        set_condition([], "Ready", True, "Ok", at=T0), "Stalled", True, "Waiting", at=T0
    )
    assert [c.type for c in remove_condition(conditions, "Stalled")] == ["Ready"]


def test_conditions_serialise_as_kubernetes_writes_them() -> None:
    (ready,) = to_k8s(set_condition([], "Ready", True, "Ok", "fine", observed_generation=4, at=T0))
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "Ok",
        "message": "fine",
        "lastTransitionTime": "2025-01-01T12:00:00Z",
        "observedGeneration": 4,
    }
