"""Guardrails and rollback: when a check fails after a change, the run's changes are undone newest first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agency_runtime.api.common import RunPhase
from agency_runtime.journal import Kind
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import Reply, call, reply
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Crash, CrashingJournal, Runner, agent, http_tool, policy


def guarded_http(endpoint: CountingEndpoint) -> dict[str, Any]:
    tool = http_tool("127.0.0.1")
    tool["settings"]["guardrailUrl"] = f"{endpoint.url}/health"
    return tool


def post(endpoint: CountingEndpoint, path: str, *, undo: bool = True) -> Reply:
    arguments: dict[str, Any] = {"method": "POST", "url": f"{endpoint.url}{path}", "body": {"n": 1}}
    if undo:
        arguments["undo"] = {"method": "DELETE", "url": f"{endpoint.url}{path}"}
    return reply(tool_calls=[call("http_request", arguments)])


def test_a_failed_guardrail_undoes_both_changes_newest_first_and_fails_the_run(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    endpoint.unhealthy_after("/health", effects=2)
    scripted_llm.script("guarded", [post(endpoint, "/a"), post(endpoint, "/b"), reply("never asked")])

    result = runner.run(agent(scripted_llm.base_url, "guarded", tools=[guarded_http(endpoint)]))

    assert (result.phase, result.reason) == (RunPhase.FAILED, "RolledBack")
    assert endpoint.effects == [
        'POST /a {"n": 1}',
        'POST /b {"n": 1}',
        "DELETE /b ",
        "DELETE /a ",
    ]
    assert "guardrail http_request.guardrailUrl failed after step-2/tool-0" in result.message
    assert "HTTP 503" in result.message
    assert f"DELETE {endpoint.url}/b (undoing step-2/tool-0); DELETE {endpoint.url}/a" in result.message
    assert len(scripted_llm.requests("guarded")) == 2, "the model is not asked after the guardrail failed"
    checks = [r for r in runner.journal_records() if r.key.endswith("/guardrail")]
    assert [(r.key, r.data["passed"]) for r in checks] == [
        ("step-1/tool-0/guardrail", True),
        ("step-2/tool-0/guardrail", False),
    ]


def test_guardrail_checks_and_the_rollback_are_traced_as_steps_with_the_undos_inside(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    exporter = InMemorySpanExporter()
    runner.span_exporter = exporter
    endpoint.unhealthy_after("/health", effects=2)
    scripted_llm.script("traced-rollback", [post(endpoint, "/a"), post(endpoint, "/b")])

    runner.run(agent(scripted_llm.base_url, "traced-rollback", tools=[guarded_http(endpoint)]))

    spans = exporter.get_finished_spans()
    guardrails = [s for s in spans if s.name == "guardrail"]
    (rollback,) = [s for s in spans if s.name == "rollback"]
    undos = [s for s in spans if s.parent is not None and s.parent.span_id == rollback.context.span_id]
    assert [(s.attributes or {})["agency.guardrail.passed"] for s in guardrails] == [True, False]
    assert (rollback.attributes or {})["agency.step.kind"] == "rollback"
    assert [(s.attributes or {})["gen_ai.tool.call.id"] for s in undos] == [
        "rollback/step-2/tool-0",
        "rollback/step-1/tool-0",
    ]


def test_a_rollback_interrupted_after_one_undo_resumes_without_undoing_twice(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint, tmp_path: Path
) -> None:
    endpoint.unhealthy_after("/health", effects=2)
    scripted_llm.script("resumed", [post(endpoint, "/a"), post(endpoint, "/b")])
    spec = agent(scripted_llm.base_url, "resumed", tools=[guarded_http(endpoint)])
    crashing = CrashingJournal(tmp_path / "journal" / "run-1", Kind.RESULT, "rollback/step-2/tool-0")
    with pytest.raises(Crash):
        runner.run(spec, journal=crashing)
    assert endpoint.effects[-1] == "DELETE /b "

    result = runner.run(spec)

    assert (result.phase, result.reason) == (RunPhase.FAILED, "RolledBack")
    assert [e.split()[0] + " " + e.split()[1] for e in endpoint.effects] == [
        "POST /a",
        "POST /b",
        "DELETE /b",
        "DELETE /a",
    ]
    assert [(r.method, r.path) for r in endpoint.requests].count(("DELETE", "/b")) == 1
    assert len(scripted_llm.requests("resumed")) == 2


def test_a_change_without_an_undo_is_named_when_the_rollback_cannot_be_complete(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    endpoint.unhealthy_after("/health", effects=2)
    scripted_llm.script("partial", [post(endpoint, "/a", undo=False), post(endpoint, "/b")])

    result = runner.run(agent(scripted_llm.base_url, "partial", tools=[guarded_http(endpoint)]))

    assert (result.phase, result.reason) == (RunPhase.FAILED, "RollbackIncomplete")
    assert endpoint.effects[2:] == ["DELETE /b "]
    assert "NOT undone: http_request (step-1/tool-0): it recorded no way to undo it" in result.message


def test_passing_guardrails_let_the_run_finish_and_undo_nothing(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script("healthy", [post(endpoint, "/a"), reply("done")])

    result = runner.run(agent(scripted_llm.base_url, "healthy", tools=[guarded_http(endpoint)]))

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "done")
    assert endpoint.effects == ['POST /a {"n": 1}']
    assert [r.path for r in endpoint.requests] == ["/a", "/health"]


def test_rollback_required_holds_a_call_without_undo_and_acts_on_one_with_undo(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    required = policy(
        tools={"allowed": ["*"]},
        autonomy={
            "readOnly": {"level": "act"},
            "idempotent": {"level": "act"},
            "destructive": {"level": "act", "rollback": "Required"},
        },
        network={"egress": [{"hosts": ["127.0.0.1"], "ports": [{"port": _port(endpoint)}]}]},
    )
    scripted_llm.script("no-undo", [post(endpoint, "/x", undo=False)])
    scripted_llm.script("with-undo", [post(endpoint, "/y"), reply("done")])
    tools = [http_tool("127.0.0.1")]

    held = runner.run(agent(scripted_llm.base_url, "no-undo", tools=tools), policy=required, run_id="held")
    acted = runner.run(
        agent(scripted_llm.base_url, "with-undo", tools=tools), policy=required, run_id="acted"
    )

    assert held.phase is RunPhase.WAITING_FOR_APPROVAL
    assert "cannot be undone" in held.message
    assert (acted.phase, acted.result) == (RunPhase.SUCCEEDED, "done")
    assert endpoint.effects == ['POST /y {"n": 1}']


def test_an_undo_to_a_host_the_tool_may_not_reach_refuses_the_call(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    arguments = {
        "method": "POST",
        "url": f"{endpoint.url}/a",
        "undo": {"method": "DELETE", "url": "http://elsewhere.example/a"},
    }
    scripted_llm.script("bad-undo", [reply(tool_calls=[call("http_request", arguments)]), reply("ok")])

    runner.run(agent(scripted_llm.base_url, "bad-undo", tools=[http_tool("127.0.0.1")]))

    assert endpoint.requests == []
    told = scripted_llm.requests("bad-undo")[1]["messages"][-1]["content"]
    assert "elsewhere.example" in told


def _port(endpoint: CountingEndpoint) -> int:
    return int(endpoint.url.rsplit(":", 1)[1])


def test_a_guardrail_declared_on_the_agent_spec_rolls_back_the_calls_of_the_tools_it_names(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    endpoint.unhealthy_after("/health", effects=1)
    scripted_llm.script("spec-guardrail", [post(endpoint, "/a"), reply("never asked")])
    guardrails = [{"name": "shop-health", "url": f"{endpoint.url}/health", "tools": ["http_request"]}]

    result = runner.run(
        agent(scripted_llm.base_url, "spec-guardrail", tools=[http_tool("127.0.0.1")], guardrails=guardrails)
    )

    assert (result.phase, result.reason) == (RunPhase.FAILED, "RolledBack")
    assert endpoint.effects == ['POST /a {"n": 1}', "DELETE /a "]
    assert "guardrail shop-health failed after step-1/tool-0" in result.message
