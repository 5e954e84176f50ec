"""Reflect and adapt: a finished run leaves a lesson the agent's next run is told; a judge scores runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agency_runtime.api.agent import AgentSpec, JudgeSpec
from agency_runtime.api.common import RunPhase
from agency_runtime.contract import Budget
from agency_runtime.journal import Journal, Kind
from agency_runtime.judge import JudgeSettings, parse, settings_of
from agency_runtime.loop import RunResult, run_agent
from agency_runtime.reflection import MAX_LESSON_CHARS, MAX_LESSONS_SHOWN
from agency_runtime.tools.memory import FileMemory
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, error, reply
from unit.runtime.runtime_support import Crash, CrashingJournal, Runner, agent

LESSON = "Read the freezer log before ordering stock."


def _remembering(base_url: str, conversation: str) -> AgentSpec:
    return agent(base_url, conversation, memory={"scope": "Agent"})


def _run(
    runner: Runner,
    spec: AgentSpec,
    *,
    judge: JudgeSettings | None = None,
    journal: Journal | None = None,
    **kwargs: Any,
) -> RunResult:
    ctx = dataclasses.replace(runner.context(spec, journal=journal, **kwargs), judge=judge)
    try:
        return run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()


def _lessons(runner: Runner) -> list[str]:
    return FileMemory(runner.root / "memory" / "agent.json").lessons()


def test_the_lesson_a_run_reflects_on_is_in_the_next_runs_first_request(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("learn", [reply("ordered 3", usage=(100, 5)), reply(LESSON, usage=(300, 12))])
    scripted_llm.script("learn-again", [reply("ordered 2"), reply("none")])

    first = _run(runner, _remembering(scripted_llm.base_url, "learn"), input="keep stock up", run_id="first")
    _run(runner, _remembering(scripted_llm.base_url, "learn-again"), run_id="second")

    assert (first.phase, first.result) == (RunPhase.SUCCEEDED, "ordered 3")
    assert first.reflection == {"lesson": LESSON, "note": "stored as memory note 'lesson-first'"}
    assert (first.usage.input_tokens, first.usage.output_tokens) == (400, 17), "reflection is counted"
    assert first.steps == 1, "reflection is not a step"
    asked = scripted_llm.requests("learn")[1]
    assert "tools" not in asked
    assert "keep stock up" in asked["messages"][1]["content"]
    assert "Succeeded" in asked["messages"][1]["content"]
    system = scripted_llm.requests("learn-again")[0]["messages"][0]["content"]
    assert LESSON in system
    assert _lessons(runner) == [LESSON], "a run with nothing to learn stores no lesson"


def test_a_run_stopped_by_its_step_limit_still_reflects(scripted_llm: ScriptedLLM, runner: Runner) -> None:
    scripted_llm.script(
        "stopped",
        [
            reply(tool_calls=[call("update_plan", {"plan": "loop forever"})]),
            reply("Plan fewer steps. " * 100),
        ],
    )

    result = _run(runner, _remembering(scripted_llm.base_url, "stopped"), budget=Budget(max_steps=1))

    assert result.phase is RunPhase.BUDGET_EXCEEDED
    (lesson,) = _lessons(runner)
    assert lesson.startswith("Plan fewer steps.")
    assert len(lesson) <= MAX_LESSON_CHARS, "a lesson is bounded"


def test_reflection_is_skipped_with_a_notice_when_the_budget_is_spent(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("spent", [reply("done", usage=(980, 10)), reply(LESSON)])

    result = _run(runner, _remembering(scripted_llm.base_url, "spent"), budget=Budget(max_tokens=1000))

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "done")
    assert result.reflection is not None
    assert result.reflection["note"].startswith("skipped: the budget does not allow it")
    assert len(scripted_llm.requests("spent")) == 1
    assert result.usage.total_tokens == 990
    assert _lessons(runner) == []


def test_a_run_restarted_after_reflecting_stores_the_lesson_without_asking_again(
    scripted_llm: ScriptedLLM, runner: Runner, tmp_path: Path
) -> None:
    scripted_llm.script("restart", [reply("done"), reply(LESSON)])
    spec = _remembering(scripted_llm.base_url, "restart")
    crashing = CrashingJournal(tmp_path / "journal" / "run-1", Kind.RESULT, "reflection")
    with pytest.raises(Crash):
        _run(runner, spec, journal=crashing)
    assert _lessons(runner) == []

    result = _run(runner, spec)

    assert result.reflection is not None
    assert result.reflection["lesson"] == LESSON
    assert _lessons(runner) == [LESSON]
    assert len(scripted_llm.requests("restart")) == 2


def test_a_run_whose_model_failed_does_not_ask_that_model_to_reflect(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("broken", [error(400, "bad request"), reply(LESSON)])

    result = _run(runner, _remembering(scripted_llm.base_url, "broken"))

    assert (result.phase, result.reason) == (RunPhase.FAILED, "ModelFailed")
    assert result.reflection == {"note": "skipped: the run's model failed"}
    assert len(scripted_llm.requests("broken")) == 1
    assert _lessons(runner) == []


def test_a_new_run_is_told_only_the_newest_lessons(scripted_llm: ScriptedLLM, runner: Runner) -> None:
    memory = FileMemory(runner.root / "memory" / "agent.json")
    for number in range(MAX_LESSONS_SHOWN + 5):
        memory.write(f"lesson-{number:03d}", f"LESSON-{number:03d}")
    scripted_llm.script("many", [reply("ok"), reply("none")])

    _run(runner, _remembering(scripted_llm.base_url, "many"))

    system = scripted_llm.requests("many")[0]["messages"][0]["content"]
    shown = [n for n in range(MAX_LESSONS_SHOWN + 5) if f"LESSON-{n:03d}" in system]
    assert shown == list(range(5, MAX_LESSONS_SHOWN + 5))


def test_a_judge_scores_the_run_into_the_result_and_the_run_span(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    exporter = InMemorySpanExporter()
    runner.span_exporter = exporter
    scripted_llm.script("worker", [reply("the answer is 42")])
    scripted_llm.script("judge", [reply('```json\n{"score": 0.8, "reason": "correct but terse"}\n```')])
    judge = JudgeSettings("openai/judge", scripted_llm.base_url, rubric="RUBRIC: answers must be correct")

    result = _run(runner, agent(scripted_llm.base_url, "worker"), judge=judge)

    assert result.judge == {
        "scored": True,
        "score": 0.8,
        "reason": "correct but terse",
        "model": "openai/judge",
    }
    assert result.to_json()["judge"]["score"] == 0.8
    asked = scripted_llm.requests("judge")[0]["messages"][1]["content"]
    assert "RUBRIC: answers must be correct" in asked
    assert "the answer is 42" in asked
    (run,) = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    assert (run.attributes or {})["agency.judge.score"] == 0.8
    (judging,) = [s for s in exporter.get_finished_spans() if s.name == "judge"]
    assert (judging.attributes or {})["agency.step.kind"] == "judge"


def test_a_malformed_judge_answer_leaves_the_run_unscored_but_finished(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("worker2", [reply("done")])
    scripted_llm.script("judge2", [reply("I'd say it went rather well!")])

    result = _run(
        runner,
        agent(scripted_llm.base_url, "worker2"),
        judge=JudgeSettings("openai/judge2", scripted_llm.base_url),
    )

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "done")
    assert result.judge is not None
    assert result.judge["scored"] is False
    assert "score" not in result.judge
    assert "did not answer a JSON object" in result.judge["reason"]


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ('{"score": 1, "reason": "perfect"}', 1.0),
        ('Verdict: {"score": 0.25, "reason": "partly"} -- end', 0.25),
        ('{"score": 1.5, "reason": "too high"}', None),
        ('{"score": "high"}', None),
        ('{"score": true}', None),
        ("{not json", None),
        ("", None),
    ],
)
def test_judge_answers_are_scored_only_when_they_hold_a_score_from_0_to_1(
    answer: str, score: float | None
) -> None:
    assert parse(answer, "m").score == score


def test_judge_settings_are_read_from_the_agent_spec_judge_field() -> None:
    spec = AgentSpec.model_validate(
        {
            "model": {"name": "openai/m"},
            "instructions": "x",
            "judge": {"model": {"name": "openai/judge", "apiBase": "http://judge:8000/v1"}, "rubric": "R"},
        }
    )
    without_rubric = spec.model_copy(
        update={"judge": JudgeSpec.model_validate({"model": {"name": "openai/j"}})}
    )

    assert settings_of(spec) == JudgeSettings("openai/judge", "http://judge:8000/v1", "R")
    assert settings_of(without_rubric) == JudgeSettings("openai/j")
    assert "sk-secret" not in repr(settings_of(spec, "sk-secret")), "the judge's key never shows in logs"
    assert settings_of(agent("http://127.0.0.1:1/v1", "x")) is None
    assert json.dumps(parse('{"score": 0.5, "reason": "ok"}', "m").to_json())
