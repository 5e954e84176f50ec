"""A run's spans follow the GenAI conventions, nest under the run (and under TRACEPARENT), never hold keys."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agency_runtime.loop import run_agent
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from unit.runtime.runtime_support import Runner, act_on_everything, agent

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def _run(scripted_llm: ScriptedLLM, runner: Runner, name: str, **kwargs: Any) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    runner.span_exporter = exporter
    scripted_llm.script(
        name,
        [
            reply(
                tool_calls=[call("update_plan", {"plan": "secret plan text"}, id="call_1")], usage=(120, 7)
            ),
            reply("done", usage=(200, 9)),
        ],
    )
    runner.run(agent(scripted_llm.base_url, name), input="user question text", **kwargs)
    return list(exporter.get_finished_spans())


def test_a_run_is_one_invoke_agent_span_with_chat_and_tool_spans_inside(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    spans = _run(scripted_llm, runner, "traced", run_id="uid-123")

    by_name = {s.name: s for s in spans}
    assert sorted(by_name) == ["chat traced", "execute_tool update_plan", "invoke_agent tester"]
    run = by_name["invoke_agent tester"]
    chats = [s for s in spans if s.name == "chat traced"]
    tool = by_name["execute_tool update_plan"]
    assert run.parent is None
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in [*chats, tool])
    assert (
        dict(run.attributes or {}).items()
        >= {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "tester",
            "gen_ai.conversation.id": "uid-123",
        }.items()
    )
    first = chats[0].attributes or {}
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "openai"
    assert first["gen_ai.request.model"] == "traced"
    assert first["gen_ai.response.model"] == "traced"
    assert str(first["gen_ai.response.id"]).startswith("chatcmpl-")
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (120, 7)
    assert tuple(first["gen_ai.response.finish_reasons"]) == ("tool_calls",)  # type: ignore[arg-type]
    assert (
        dict(tool.attributes or {}).items()
        >= {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "update_plan",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.type": "function",
        }.items()
    )


def test_traceparent_makes_the_run_span_a_child_of_the_given_span(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    spans = _run(scripted_llm, runner, "child", traceparent=f"00-{PARENT_TRACE}-{PARENT_SPAN}-01")

    run = next(s for s in spans if s.name.startswith("invoke_agent"))
    assert format(run.context.trace_id, "032x") == PARENT_TRACE
    assert run.parent is not None
    assert format(run.parent.span_id, "016x") == PARENT_SPAN


def _everything(spans: list[ReadableSpan]) -> str:
    return json.dumps([{k: str(v) for k, v in (s.attributes or {}).items()} for s in spans])


def test_content_is_not_recorded_unless_the_policy_enables_it_and_the_key_never_is(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    quiet = _everything(_run(scripted_llm, runner, "quiet", run_id="q"))
    loud = _everything(
        _run(
            scripted_llm,
            runner,
            "loud",
            run_id="l",
            policy=act_on_everything(tracing={"contentCapture": "Enabled"}),
        )
    )

    assert "user question text" not in quiet
    assert "secret plan text" not in quiet
    assert "user question text" in loud
    assert "secret plan text" in loud
    assert runner.api_key not in quiet + loud


def test_token_usage_and_duration_metrics_are_recorded_per_model_call(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    reader = InMemoryMetricReader()
    runner.metric_reader = reader
    scripted_llm.script(
        "metered",
        [reply(tool_calls=[call("update_plan", {"plan": "p"})], usage=(120, 7)), reply("ok", usage=(200, 9))],
    )

    ctx = runner.context(agent(scripted_llm.base_url, "metered"))
    run_agent(ctx)
    data = reader.get_metrics_data()
    ctx.telemetry.shutdown()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    tokens = {
        str(p.attributes["gen_ai.token.type"]): (p.sum, p.count)
        for p in metrics["gen_ai.client.token.usage"].data.data_points
        if isinstance(p, HistogramDataPoint) and p.attributes is not None
    }
    assert tokens == {"input": (320, 2), "output": (16, 2)}
    durations = [
        p
        for p in metrics["gen_ai.client.operation.duration"].data.data_points
        if isinstance(p, HistogramDataPoint)
    ]
    assert sum(p.count for p in durations) == 2
    assert metrics["gen_ai.client.token.usage"].unit == "{token}"
