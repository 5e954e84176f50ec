"""Long runs: older steps are compacted into a summary the model writes; the journal keeps every step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agency_runtime.api.common import RunPhase
from agency_runtime.compaction import SUMMARY_PREFIX, CompactionSettings
from agency_runtime.journal import Journal, Kind
from agency_runtime.loop import RunResult, run_agent
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import Reply, call, error, reply
from unit.runtime.runtime_support import Crash, CrashingJournal, Runner, act_on_everything, agent

#: Each step's reply carries this much text, so three steps cross the tiny test threshold.
FILLER = "lorem " * 1500
THRESHOLD = CompactionSettings(threshold_tokens=3000, keep_steps=1)


def _steps() -> list[Reply]:
    return [
        reply(f"STEP-ONE-MARKER {FILLER}", tool_calls=[call("update_plan", {"plan": "p1"})], usage=(700, 10)),
        reply(
            f"STEP-TWO-MARKER {FILLER}", tool_calls=[call("update_plan", {"plan": "p2"})], usage=(2300, 10)
        ),
        reply("SUMMARY: planned p1 then p2", usage=(2000, 20)),
        reply("all done", usage=(2500, 5)),
    ]


def _run(runner: Runner, base_url: str, name: str, journal: Journal | None = None) -> RunResult:
    ctx = dataclasses.replace(
        runner.context(agent(base_url, name), input="THE-TASK", journal=journal), compaction=THRESHOLD
    )
    try:
        return run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()


def test_a_long_run_sends_a_summary_instead_of_its_oldest_steps_and_the_journal_keeps_them(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("long", _steps())

    result = _run(runner, scripted_llm.base_url, "long")

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "all done")
    requests = scripted_llm.requests("long")
    assert len(requests) == 4, "three steps and one summary call"
    summary_request = requests[2]
    assert "tools" not in summary_request
    assert "STEP-ONE-MARKER" in summary_request["messages"][1]["content"]
    assert "STEP-TWO-MARKER" not in summary_request["messages"][1]["content"], "the last step is kept whole"
    sent = requests[3]["messages"]
    texts = [str(m.get("content") or "") for m in sent]
    assert sent[1] == {"role": "user", "content": "THE-TASK"}
    assert texts[2] == SUMMARY_PREFIX + "SUMMARY: planned p1 then p2"
    assert not any("STEP-ONE-MARKER" in t for t in texts)
    assert any("STEP-TWO-MARKER" in t for t in texts)
    assert [m["role"] for m in sent[3:]] == ["assistant", "tool"], "the kept tool call keeps its result"
    assert sent[3]["tool_calls"][0]["id"] == sent[4]["tool_call_id"]
    records = runner.journal_records()
    answers = {r.key: r.data for r in records if r.kind is Kind.RESULT}
    assert "STEP-ONE-MARKER" in str(answers["step-1/model"]["content"])
    assert answers["step-3/compaction"]["cut"] == 3
    assert result.usage.input_tokens == 700 + 2300 + 2000 + 2500, "the summary call counts against the budget"
    assert result.steps == 3, "compaction is not a step"


def test_a_run_restarted_after_compaction_does_not_ask_for_the_summary_again(
    scripted_llm: ScriptedLLM, runner: Runner, tmp_path: Path
) -> None:
    scripted_llm.script("again", _steps())
    crashing = CrashingJournal(tmp_path / "journal" / "run-1", Kind.RESULT, "step-3/compaction")
    with pytest.raises(Crash):
        _run(runner, scripted_llm.base_url, "again", journal=crashing)
    assert len(scripted_llm.requests("again")) == 3

    result = _run(runner, scripted_llm.base_url, "again")

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "all done")
    requests = scripted_llm.requests("again")
    assert len(requests) == 4, "only the unanswered step is asked again"
    assert str(requests[3]["messages"][2]["content"]).startswith(SUMMARY_PREFIX)
    assert result.usage.input_tokens == 700 + 2300 + 2000 + 2500


def test_compaction_is_traced_as_its_own_step_with_a_chat_span_inside(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    exporter = InMemorySpanExporter()
    runner.span_exporter = exporter
    scripted_llm.script("traced-compaction", _steps())

    _run(runner, scripted_llm.base_url, "traced-compaction")

    spans = exporter.get_finished_spans()
    (compaction,) = [s for s in spans if s.name == "compaction"]
    (run,) = [s for s in spans if s.name.startswith("invoke_agent")]
    inside = [s for s in spans if s.parent is not None and s.parent.span_id == compaction.context.span_id]
    assert compaction.parent is not None
    assert compaction.parent.span_id == run.context.span_id
    assert (compaction.attributes or {})["agency.step.kind"] == "compaction"
    assert [s.name for s in inside] == ["chat traced-compaction"]
    assert (inside[0].attributes or {})["gen_ai.usage.input_tokens"] == 2000


def test_a_failed_summary_call_leaves_the_step_uncompacted_and_the_run_goes_on(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    steps = _steps()
    scripted_llm.script("no-summary", [steps[0], steps[1], error(400, "context too long"), steps[3]])

    result = _run(runner, scripted_llm.base_url, "no-summary")

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "all done")
    sent = scripted_llm.requests("no-summary")[3]["messages"]
    assert any("STEP-ONE-MARKER" in str(m.get("content") or "") for m in sent), "sent in full"
    assert "step-3/compaction/skipped" in [r.key for r in runner.journal_records() if r.kind is Kind.EVENT]


def test_a_short_run_under_the_threshold_is_not_compacted(scripted_llm: ScriptedLLM, runner: Runner) -> None:
    scripted_llm.script("short", [reply(tool_calls=[call("update_plan", {"plan": "p"})]), reply("done")])

    result = _run(runner, scripted_llm.base_url, "short")

    assert result.result == "done"
    assert len(scripted_llm.requests("short")) == 2
    assert not any(r.key.endswith("compaction") for r in runner.journal_records())


def test_compaction_settings_come_from_the_environment_with_safe_defaults() -> None:
    assert CompactionSettings.from_environ({}) == CompactionSettings()
    assert CompactionSettings().threshold_for("openai/unknown-test-model") is None
    assert CompactionSettings().threshold_for("gpt-4o") == 96_000, "75% of gpt-4o's 128k window"
    settings = CompactionSettings.from_environ(
        {
            "AGENCY_COMPACTION_TOKENS": "5000",
            "AGENCY_COMPACTION_KEEP_STEPS": "3",
            "AGENCY_COMPACTION_FRACTION": "x",
        }
    )
    assert (settings.threshold_tokens, settings.keep_steps, settings.fraction) == (5000, 3, 0.75)


def test_a_policy_compact_at_tokens_compacts_a_run_unless_the_environment_overrides_it(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("policy-threshold", _steps())
    governing = act_on_everything(budgets={"perRun": {"compactAtTokens": 3000}})
    ctx = dataclasses.replace(
        runner.context(agent(scripted_llm.base_url, "policy-threshold"), input="THE-TASK", policy=governing),
        compaction=CompactionSettings(keep_steps=1),
    )
    try:
        result = run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()

    assert result.result == "all done"
    answers = {r.key: r.data for r in runner.journal_records() if r.kind is Kind.RESULT}
    assert answers["step-3/compaction"]["threshold"] == 3000
    overridden = CompactionSettings.from_environ({"AGENCY_COMPACTION_TOKENS": "9000"}).with_policy(governing)
    assert overridden.threshold_tokens == 9000, "the environment variable wins over the policy"
