from __future__ import annotations

from agency_operator.status import StatusDraft, phase_of, result_fields
from agency_runtime.api.run import MAX_JUDGE_REASON, MAX_LESSON, AgentRunStatus


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


def test_the_judges_score_and_the_lesson_of_a_finished_run_land_in_its_status() -> None:
    fields = result_fields(
        {
            "phase": "Succeeded",
            "steps": 2,
            "judge": {"scored": True, "score": 0.8, "reason": "met the rubric", "model": "openai/judge"},
            "reflection": {"note": "stored", "lesson": "  Check the cache before rebuilding it.  "},
        }
    )

    assert fields["judge"] == {
        "scored": True,
        "score": 0.8,
        "reason": "met the rubric",
        "model": "openai/judge",
    }
    assert fields["lesson"] == "Check the cache before rebuilding it."


def test_an_unscored_verdict_and_an_overlong_lesson_are_kept_within_what_the_api_accepts() -> None:
    fields = result_fields(
        {
            "phase": "Failed",
            "judge": {"scored": False, "reason": "x" * 5000, "model": "openai/judge"},
            "reflection": {"note": "stored", "lesson": "y" * 5000},
        }
    )

    assert fields["judge"]["scored"] is False
    assert "score" not in fields["judge"]
    assert len(fields["judge"]["reason"]) == MAX_JUDGE_REASON
    assert fields["judge"]["reason"].endswith("...")
    assert len(fields["lesson"]) == MAX_LESSON
    AgentRunStatus.model_validate({"judge": fields["judge"], "lesson": fields["lesson"]})


def test_a_run_without_judge_or_lesson_sets_neither() -> None:
    fields = result_fields({"phase": "Succeeded", "reflection": {"note": "the model had nothing to learn"}})

    assert "judge" not in fields
    assert "lesson" not in fields
