from __future__ import annotations

from agency_operator.status import StatusDraft, phase_of, result_fields


def test_unchanged_status_yields_no_patch() -> None:
    draft = StatusDraft(None, 1)
    draft.set(phase="Pending")
    draft.condition("Ready", False, "Starting", "starting")
    first = draft.patch()
    assert first is not None
    again = StatusDraft(first, 1)
    again.set(phase="Pending")
    again.condition("Ready", False, "Starting", "starting")
    assert again.patch() is None
    assert again.transitions == []


def test_condition_change_is_a_transition_and_keeps_other_conditions() -> None:
    draft = StatusDraft(None, 2)
    draft.condition("Admitted", True, "Admitted")
    draft.condition("Ready", False, "Starting")
    later = StatusDraft(draft.patch(), 2)
    assert later.condition("Ready", True, "Running", "running")
    patch = later.patch()
    assert patch is not None
    assert [c["type"] for c in patch["conditions"]] == ["Admitted", "Ready"]
    assert later.transitions == [("Ready", "True", "Running", "running")]


def test_removed_field_is_patched_to_null() -> None:
    draft = StatusDraft({"boundPolicyRef": {"name": "a"}}, None)
    draft.set(boundPolicyRef=None)
    assert draft.patch() == {"boundPolicyRef": None}


def test_runtime_result_fills_steps_usage_trace_and_answer() -> None:
    fields = result_fields(
        {
            "phase": "Succeeded",
            "steps": 4,
            "usage": {"inputTokens": 100, "outputTokens": 20, "costUSD": 0.5},
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "result": "done",
        }
    )
    assert fields == {
        "stepCount": 4,
        "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120, "costUSD": 0.5},
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "result": "done",
    }


def test_a_result_that_is_not_final_or_missing_means_failed() -> None:
    assert phase_of({"phase": "BudgetExceeded"}).value == "BudgetExceeded"
    assert phase_of({"phase": "Running"}).value == "Failed"
    assert phase_of(None).value == "Failed"
