"""The collaboration tools on the real API server with a run's own token: find_agents lists what RBAC lets
the run see, delegate creates one child AgentRun per call with a budget carved out of what the parent has
left (the test plays the operator's part and finishes the child), and publish_signal reaches the real
signal endpoint, which starts the matching schedule's run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agency_runtime.api.common import RunPhase
from agency_runtime.contract import Budget
from agency_runtime.loop import run_agent
from agency_runtime.tools.base import ToolContext
from agency_runtime.tools.delegate import PARENT_LABEL, TRACEPARENT_ANNOTATION, DelegateTool
from agency_runtime.tools.discovery import FindAgentsTool
from agency_runtime.tools.registry import build_registry
from agency_runtime.tools.signal import PublishSignalTool, SignalEndpoint
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from agency_testbed.procs import wait_until
from integration.runtime.run_identity import RunIdentity, apply, create_run
from integration.triggers.test_triggers_signal_endpoint_live import SCHEDULE, LiveEndpoint
from unit.runtime.runtime_support import Crash, Runner, agent, tool_messages

LIST_AGENTS = [{"apiGroups": ["agency.dev"], "resources": ["agents"], "verbs": ["list"]}]
DELEGATE = [{"apiGroups": ["agency.dev"], "resources": ["agentruns"], "verbs": ["create", "get"]}]
JsonDict = dict[str, Any]


def _agent(namespace: str, name: str, skills: list[JsonDict], description: str = "") -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": "openai/x"},
            "instructions": "help",
            "description": description,
            "skills": skills,
        },
    }


def _context(key: str = "step-1/tool-0", remaining: Budget | None = None) -> ToolContext:
    return ToolContext("uid-1", key, f"uid-1/{key}", None, remaining)


def _runs(testbed: Testbed, namespace: str) -> list[JsonDict]:
    with testbed.http() as http:
        answer = http.get(f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agentruns")
    answer.raise_for_status()
    items: list[JsonDict] = answer.json()["items"]
    return items


def _revoke(testbed: Testbed, identity: RunIdentity, resource: str, verb: str) -> None:
    """Take `verb` on `resource` out of the run's Role (whatever the operator's generated Role grants)."""
    namespace, role_name = identity.run.namespace, identity.service_account  # the Role is named like it
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{role_name}"
    with testbed.http() as http:
        role = http.get(path).raise_for_status().json()
        rules = []
        for rule in role["rules"]:
            if resource in rule["resources"] and verb in rule["verbs"]:
                rule = {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}
            if rule["verbs"]:
                rules.append(rule)
        http.put(path, json={**role, "rules": rules}).raise_for_status()


# ----- find_agents --------------------------------------------------------------------------------------


@pytest.fixture
def fleet(testbed: Testbed, agency_crds: list[str], namespace: str) -> str:
    apply(
        testbed,
        _agent(
            namespace,
            "dispatcher",
            [{"name": "route-planning", "description": "Plans delivery routes for refrigerated trucks."}],
            "Dispatches replacement shipments.",
        ),
    )
    apply(
        testbed,
        _agent(namespace, "qa", [{"name": "ticketing", "description": "Opens quality tickets for lots."}]),
    )
    apply(testbed, _agent(namespace, "silent", []))
    return namespace


def test_find_agents_returns_the_agents_whose_skills_match_by_name_or_words(
    testbed: Testbed, fleet: str, tmp_path: Path
) -> None:
    identity = create_run(testbed, fleet, "run-1", tmp_path, extra_rules=LIST_AGENTS)
    tool = FindAgentsTool("find_agents", None, identity.client(), fleet)
    try:
        by_words = tool.invoke({"query": "delivery routes"}, _context())
        by_name = tool.invoke({"query": "ticketing"}, _context())
        nothing = tool.invoke({"query": "astronomy"}, _context())
    finally:
        identity.close()

    assert not by_words.is_error, by_words.content
    assert json.loads(by_words.content) == [
        {
            "name": "dispatcher",
            "description": "Dispatches replacement shipments.",
            "skills": [
                {"name": "route-planning", "description": "Plans delivery routes for refrigerated trucks."}
            ],
        }
    ]
    assert [a["name"] for a in json.loads(by_name.content)] == ["qa"]
    assert not nothing.is_error
    assert "no agent" in nothing.content


def test_find_agents_without_rbac_to_list_agents_is_a_403_the_model_reads(
    testbed: Testbed, fleet: str, tmp_path: Path
) -> None:
    identity = create_run(testbed, fleet, "run-1", tmp_path)
    _revoke(testbed, identity, "agents", "list")
    try:
        outcome = FindAgentsTool("find_agents", None, identity.client(), fleet).invoke(
            {"query": "routes"}, _context()
        )
    finally:
        identity.close()

    assert outcome.is_error
    assert "HTTP 403" in outcome.content
    assert "dispatcher" not in outcome.content


# ----- delegate -----------------------------------------------------------------------------------------


def _finish_child_when_it_appears(testbed: Testbed, namespace: str, status: JsonDict) -> threading.Thread:
    """Plays the operator: once a delegated AgentRun exists, writes its finished status."""

    def work() -> None:
        def child() -> JsonDict | None:
            runs = [r for r in _runs(testbed, namespace) if r["metadata"].get("labels", {}).get(PARENT_LABEL)]
            return runs[0] if runs else None

        wait_until(lambda: child() is not None, 30, "the delegated AgentRun to be created")
        found = child()
        assert found is not None
        name = found["metadata"]["name"]
        with testbed.http() as http:
            http.patch(
                f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agentruns/{name}/status",
                json={"status": status},
                headers={"Content-Type": "application/merge-patch+json"},
            ).raise_for_status()

    thread = threading.Thread(target=work, name="fake-operator", daemon=True)
    thread.start()
    return thread


@pytest.fixture
def delegator(
    testbed: Testbed, agency_crds: list[str], namespace: str, tmp_path: Path
) -> Iterator[RunIdentity]:
    identity = create_run(testbed, namespace, "run-1", tmp_path, extra_rules=DELEGATE)
    yield identity
    identity.close()


def _delegating_run(
    runner: Runner, identity: RunIdentity, llm: ScriptedLLM, conversation: str, budget: Budget
) -> Any:
    spec = agent(
        llm.base_url, conversation, tools=[{"name": "ask_dispatch", "agentRef": {"name": "dispatcher"}}]
    )
    ctx = runner.context(spec, run_id=identity.run.uid, budget=budget)
    ctx.tools = build_registry(
        spec, None, None, kube=identity.client(), namespace=identity.run.namespace, run=identity.run
    )
    try:
        return run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()


def test_delegation_creates_one_child_within_the_parents_remaining_budget_and_counts_its_usage(
    scripted_llm: ScriptedLLM, runner: Runner, delegator: RunIdentity, testbed: Testbed, namespace: str
) -> None:
    scripted_llm.script(
        "delegating",
        [
            reply(
                tool_calls=[call("ask_dispatch", {"input": "Send a truck to lot L-889."})], usage=(1000, 50)
            ),
            reply("The dispatcher sent truck 7.", usage=(1200, 20)),
        ],
    )
    finisher = _finish_child_when_it_appears(
        testbed,
        namespace,
        {
            "phase": "Succeeded",
            "result": "truck 7 is on its way",
            "usage": {"inputTokens": 600, "outputTokens": 100, "totalTokens": 700, "costUSD": 0.0},
        },
    )

    result = _delegating_run(runner, delegator, scripted_llm, "delegating", Budget(max_tokens=5000))
    finisher.join(timeout=30)

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "The dispatcher sent truck 7.")
    children = [r for r in _runs(testbed, namespace) if r["metadata"]["name"] != "run-1"]
    assert len(children) == 1
    child = children[0]
    assert child["spec"]["agentRef"] == {"name": "dispatcher"}
    assert child["spec"]["input"] == "Send a truck to lot L-889."
    assert child["spec"]["parentRunRef"] == {"name": "run-1"}
    assert child["spec"]["trigger"] == {"type": "Delegation"}
    assert child["spec"]["budget"]["maxTokens"] == 5000 - 1050, "the child gets what is left, never more"
    assert child["metadata"]["annotations"][TRACEPARENT_ANNOTATION].startswith("00-")
    assert child["metadata"]["ownerReferences"][0]["name"] == "run-1"
    assert "truck 7 is on its way" in tool_messages(scripted_llm.requests("delegating")[1])
    assert result.usage.total_tokens == 1050 + 700 + 1220, "the child's usage counts against the parent"


def test_a_repeated_delegation_call_adopts_the_same_child_instead_of_creating_a_second(
    delegator: RunIdentity, testbed: Testbed, namespace: str
) -> None:
    finisher = _finish_child_when_it_appears(
        testbed, namespace, {"phase": "Failed", "result": "no trucks free"}
    )
    registry = build_registry(
        agent("http://127.0.0.1:9/v1", "x", tools=[{"name": "delegate", "builtin": "delegate"}]),
        None,
        None,
        kube=delegator.client(),
        namespace=namespace,
        run=delegator.run,
    )
    tool = registry.get("delegate")
    assert tool is not None
    arguments = {"agent": "dispatcher", "input": "Send a truck.", "maxTokens": 800}
    first = tool.invoke(arguments, _context(remaining=Budget(max_tokens=3000)))
    finisher.join(timeout=30)
    again = tool.invoke(arguments, _context(remaining=Budget(max_tokens=3000)))

    children = [r for r in _runs(testbed, namespace) if r["metadata"]["name"] != "run-1"]
    assert len(children) == 1, "the retry with the same call key found the first child"
    assert children[0]["spec"]["budget"]["maxTokens"] == 800, "what was asked, as it is below what is left"
    assert first.is_error
    assert "ended Failed" in first.content
    assert "no trucks free" in first.content
    assert again.content == first.content


def _crash(seconds: float) -> None:
    raise Crash(f"the parent process died while waiting {seconds}s for its child")


def test_a_parent_restarted_while_waiting_adopts_its_child_instead_of_creating_another(
    scripted_llm: ScriptedLLM, runner: Runner, delegator: RunIdentity, testbed: Testbed, namespace: str
) -> None:
    scripted_llm.script(
        "restarted",
        [
            reply(tool_calls=[call("ask_dispatch", {"input": "Send a truck."})], usage=(1000, 50)),
            reply("Truck sent.", usage=(1200, 20)),
        ],
    )
    spec = agent(
        scripted_llm.base_url,
        "restarted",
        tools=[{"name": "ask_dispatch", "agentRef": {"name": "dispatcher"}}],
    )

    def process(sleep: Callable[[float], None]) -> Any:
        ctx = runner.context(spec, run_id=delegator.run.uid, budget=Budget(max_tokens=5000))
        ctx.tools = build_registry(
            spec, None, None, kube=delegator.client(), namespace=namespace, run=delegator.run
        )
        tool = ctx.tools.get("ask_dispatch")
        assert isinstance(tool, DelegateTool)
        tool.sleep = sleep
        try:
            return run_agent(ctx)
        finally:
            ctx.journal.close()
            ctx.telemetry.shutdown()

    with pytest.raises(Crash):
        process(_crash)
    (waiting,) = [r for r in _runs(testbed, namespace) if r["metadata"]["name"] != "run-1"]
    assert "phase" not in (waiting.get("status") or {}), "the first process died before its child finished"
    finisher = _finish_child_when_it_appears(
        testbed,
        namespace,
        {
            "phase": "Succeeded",
            "result": "truck 3 left",
            "usage": {"inputTokens": 400, "outputTokens": 40, "totalTokens": 440, "costUSD": 0.0},
        },
    )
    result = process(time.sleep)
    finisher.join(timeout=30)

    assert result.result == "Truck sent."
    children = [r for r in _runs(testbed, namespace) if r["metadata"]["name"] != "run-1"]
    assert [c["metadata"]["name"] for c in children] == [waiting["metadata"]["name"]]
    assert "truck 3 left" in tool_messages(scripted_llm.requests("restarted")[1])
    assert len(scripted_llm.requests("restarted")) == 2, "the answered model call was not asked again"
    assert result.usage.total_tokens == 1050 + 440 + 1220, "the child's usage is counted once"


def test_delegation_with_nothing_left_of_the_budget_is_refused_without_a_child(
    delegator: RunIdentity, testbed: Testbed, namespace: str
) -> None:
    registry = build_registry(
        agent("http://127.0.0.1:9/v1", "x", tools=[{"name": "delegate", "builtin": "delegate"}]),
        None,
        None,
        kube=delegator.client(),
        namespace=namespace,
        run=delegator.run,
    )
    tool = registry.get("delegate")
    assert tool is not None

    outcome = tool.invoke({"agent": "dispatcher", "input": "x"}, _context(remaining=Budget(max_tokens=20)))

    assert outcome.is_error
    assert outcome.content.startswith("refused: nothing is left of this run's budget")
    assert [r["metadata"]["name"] for r in _runs(testbed, namespace)] == ["run-1"]


def test_delegation_without_rbac_to_create_runs_is_a_403_the_model_reads(
    testbed: Testbed, agency_crds: list[str], namespace: str, tmp_path: Path
) -> None:
    identity = create_run(testbed, namespace, "run-1", tmp_path)
    _revoke(testbed, identity, "agentruns", "create")
    try:
        registry = build_registry(
            agent("http://127.0.0.1:9/v1", "x", tools=[{"name": "delegate", "builtin": "delegate"}]),
            None,
            None,
            kube=identity.client(),
            namespace=namespace,
            run=identity.run,
        )
        tool = registry.get("delegate")
        assert tool is not None
        outcome = tool.invoke({"agent": "dispatcher", "input": "x"}, _context())
    finally:
        identity.close()

    assert outcome.is_error
    assert "HTTP 403" in outcome.content
    assert "create and get on agentruns.agency.dev" in outcome.content


# ----- publish_signal -----------------------------------------------------------------------------------


@pytest.fixture
def signal_endpoint(testbed: Testbed, agency_crds: list[str]) -> Iterator[LiveEndpoint]:
    live = LiveEndpoint(testbed)
    live.start()
    try:
        yield live
    finally:
        live.stop()


def _signal_token(kubectl: Kubectl, identity: RunIdentity, folder: Path) -> Path:
    """A token of the run's ServiceAccount for the signal endpoint's audience, as the operator mounts it."""
    token = kubectl(
        "create",
        "token",
        identity.service_account,
        "-n",
        identity.run.namespace,
        "--audience",
        "agency.dev/signals",
    ).stdout.strip()
    path = folder / "signal.token"
    path.write_text(token)
    return path


def test_a_published_signal_starts_the_matching_schedules_run_once(
    signal_endpoint: LiveEndpoint, kubectl: Kubectl, testbed: Testbed, namespace: str, tmp_path: Path
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(SCHEDULE))
    identity = create_run(
        testbed,
        namespace,
        "run-1",
        tmp_path,
        extra_rules=[{"apiGroups": ["agency.dev"], "resources": ["signals"], "verbs": ["create"]}],
    )
    endpoint = SignalEndpoint(
        f"{signal_endpoint.url}/namespaces/{{namespace}}/signals", _signal_token(kubectl, identity, tmp_path)
    )
    tool = PublishSignalTool("publish_signal", None, endpoint, namespace, "run-1")
    arguments = {"type": "com.example.coldchain.temperature", "data": {"celsius": 9.5, "lot": "L-889"}}

    with TracerProvider().get_tracer("test").start_as_current_span("execute_tool publish_signal"):
        first = tool.invoke(arguments, _context())  # carries the span as the traceparent extension
    retried = tool.invoke(arguments, _context())

    assert not first.is_error, first.content
    started = [r for r in _runs(testbed, namespace) if r["metadata"]["name"] != "run-1"]
    assert len(started) == 1, "the retried publish is the same event: deduplicated"
    signal = started[0]["spec"]["trigger"]["signal"]
    assert signal["source"] == f"agency.dev/{namespace}/agentruns/run-1"
    assert started[0]["spec"]["input"] == "Lot L-889 reached 9.5C"
    assert first.data["runs"] == retried.data["runs"] == [started[0]["metadata"]["name"]]


def test_publishing_without_a_signal_token_is_an_error_the_model_reads(
    signal_endpoint: LiveEndpoint,
    scripted_llm: ScriptedLLM,
    runner: Runner,
    testbed: Testbed,
    agency_crds: list[str],
    namespace: str,
) -> None:
    scripted_llm.script(
        "no-token",
        [
            reply(tool_calls=[call("publish_signal", {"type": "com.example.x", "data": {"lot": "L-1"}})]),
            reply("could not publish"),
        ],
    )
    spec = agent(
        scripted_llm.base_url, "no-token", tools=[{"name": "publish_signal", "builtin": "publish_signal"}]
    )
    ctx = runner.context(spec)
    endpoint = SignalEndpoint(f"{signal_endpoint.url}/namespaces/{{namespace}}/signals", None)
    ctx.tools = build_registry(spec, None, None, namespace=namespace, signals=endpoint)
    try:
        result = run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()

    assert result.result == "could not publish"
    (told,) = tool_messages(scripted_llm.requests("no-token")[1])
    assert told.startswith("error: this run has no token for the signal endpoint")
    assert _runs(testbed, namespace) == []
