"""The runtime's traces, read back from a real Jaeger: GenAI span names, parents and token counts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from agency_testbed.jaeger import Jaeger, TraceView
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from e2e.runtime.runtime_process import API_KEY, RunSetup, RuntimeProcess
from unit.runtime.runtime_support import agent

Start = Callable[[dict[str, str]], RuntimeProcess]


def _two_step_run(
    scripted_llm: ScriptedLLM, jaeger: Jaeger, tmp_path: Path, start: Start, *, traceparent: str | None = None
) -> tuple[dict[str, object], TraceView]:
    scripted_llm.script(
        "gpt-traced",
        [
            reply(tool_calls=[call("update_plan", {"plan": "1. answer"}, id="call_plan")], usage=(150, 12)),
            reply("the answer", usage=(240, 8)),
        ],
    )
    run = RunSetup(tmp_path, agent_name="tracer")
    run.write(agent(scripted_llm.base_url, "gpt-traced"), "question")
    service = f"agency-runtime-{uuid.uuid4().hex[:10]}"
    env = run.env(otlp=jaeger.otlp_http_endpoint, traceparent=traceparent, service=service)

    result = start(env).result()

    trace_id = str(result["traceId"])
    return result, TraceView.from_json(jaeger.wait_for_trace(trace_id, min_spans=4, timeout=30))


def test_a_runs_trace_in_jaeger_is_the_agent_span_with_its_chat_and_tool_spans(
    scripted_llm: ScriptedLLM, jaeger: Jaeger, tmp_path: Path, start_runtime: Start
) -> None:
    result, trace = _two_step_run(scripted_llm, jaeger, tmp_path, start_runtime)

    assert trace.outline() == "\n".join(
        [
            "invoke_agent tracer",
            "  chat gpt-traced",
            "  execute_tool update_plan",
            "  chat gpt-traced",
        ]
    )
    run = trace.named("invoke_agent tracer")
    assert run.parent_span_id is None
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.conversation.id"] == RunSetup(tmp_path).run_uid
    first, second = trace.all_named("chat gpt-traced")
    assert (
        first.attributes["gen_ai.usage.input_tokens"],
        first.attributes["gen_ai.usage.output_tokens"],
    ) == (150, 12)
    assert (
        second.attributes["gen_ai.usage.input_tokens"],
        second.attributes["gen_ai.usage.output_tokens"],
    ) == (240, 8)
    assert first.attributes["gen_ai.provider.name"] == "openai"
    assert str(first.attributes["gen_ai.response.id"]).startswith("chatcmpl-")
    tool = trace.named("execute_tool update_plan")
    assert tool.attributes["gen_ai.tool.call.id"] == "call_plan"
    assert result["usage"] == {"inputTokens": 390, "outputTokens": 20, "totalTokens": 410, "costUSD": 0.0}
    stored = str([s.attributes for s in trace.spans]) + str([s.resource for s in trace.spans])
    assert API_KEY not in stored
    assert "question" not in stored, "content is not captured without a policy enabling it"


def test_traceparent_makes_the_run_a_child_of_the_callers_span(
    scripted_llm: ScriptedLLM, jaeger: Jaeger, tmp_path: Path, start_runtime: Start
) -> None:
    parent_trace, parent_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]

    result, trace = _two_step_run(
        scripted_llm, jaeger, tmp_path, start_runtime, traceparent=f"00-{parent_trace}-{parent_span}-01"
    )

    assert result["traceId"] == parent_trace
    assert trace.trace_id == parent_trace
    assert trace.named("invoke_agent tracer").parent_span_id == parent_span
