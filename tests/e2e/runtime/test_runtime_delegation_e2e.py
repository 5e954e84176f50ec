"""Delegation end to end: the real operator (local executor) runs a planner that asks a dispatcher agent
through an agent tool; the child run gets a budget carved from what the planner has left, runs, and its
answer comes back to the planner; both runs are one trace in Jaeger, the child's under the tool call."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    OperatorFactory,
    agent,
    api_list,
    apply,
    operator,  # noqa: F401 - the fixture
    policy,
    run,
    run_path,
    secret,
    wait_for_phase,
)
from agency_testbed.jaeger import Jaeger, TraceView
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply

MAX_TOKENS = 20_000


@pytest.fixture
def delegator_role(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A ClusterRole letting a run create AgentRuns and read them, granted to runs by their policy."""
    name = f"agency-delegator-{namespace}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["agency.dev"], "resources": ["agentruns"], "verbs": ["create", "get"]}],
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(role))
    yield name
    kubectl("delete", "clusterrole", name, "--ignore-not-found")


def test_a_delegated_child_runs_within_the_parents_remaining_budget_answers_it_and_shares_its_trace(
    operator: OperatorFactory,  # noqa: F811 - the fixture imported above
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
    jaeger: Jaeger,
    delegator_role: str,
) -> None:
    scripted_llm.script(
        "planner",
        [
            reply(
                tool_calls=[call("ask_dispatch", {"input": "Send a reefer truck to lot L-889."})],
                usage=(1000, 50),
            ),
            reply("Dispatch confirmed: truck 7.", usage=(1200, 20)),
        ],
    )
    scripted_llm.script("dispatcher", [reply("truck 7 is on its way to L-889", usage=(300, 30))])
    planner = agent(
        namespace,
        "planner",
        model="openai/planner",
        tools=[{"name": "ask_dispatch", "agentRef": {"name": "dispatcher"}}],
    )
    dispatcher = agent(namespace, "dispatcher", model="openai/dispatcher")
    for made in (planner, dispatcher):
        made["spec"]["model"]["apiBase"] = scripted_llm.base_url
    apply(
        kubectl,
        secret(namespace),
        policy(
            namespace,
            identity={"clusterRoles": [{"name": delegator_role}]},
            autonomy={"idempotent": {"level": "act"}},  # asking another agent needs no approval here
            budgets={"perRun": {"maxTokens": MAX_TOKENS}},
        ),
        planner,
        dispatcher,
        run(namespace, "plan-1", agent_name="planner", input="Replace the spoiled lot L-889."),
    )
    operator.start(executor="local", env={"AGENCY_OTLP_ENDPOINT": jaeger.otlp_http_endpoint})

    status = wait_for_phase(testbed, namespace, "plan-1", "Succeeded", timeout=180)

    assert status["result"] == "Dispatch confirmed: truck 7."
    children = [
        r
        for r in api_list(testbed, run_path(namespace))
        if (r["spec"].get("parentRunRef") or {}).get("name") == "plan-1"
    ]
    assert len(children) == 1
    child = children[0]
    assert child["spec"]["trigger"] == {"type": "Delegation"}
    assert child["spec"]["budget"]["maxTokens"] == MAX_TOKENS - 1050, "what the planner had left"
    assert child["status"]["phase"] == "Succeeded"
    assert child["status"]["result"] == "truck 7 is on its way to L-889"
    assert status["usage"]["totalTokens"] == 1050 + 330 + 1220, "the child's tokens count for the parent"
    (told,) = [m for m in scripted_llm.requests("planner")[1]["messages"] if m["role"] == "tool"]
    assert told["content"] == "truck 7 is on its way to L-889"

    trace_id = status["traceId"]
    assert child["status"]["traceId"] == trace_id, "the child joined the parent's trace"
    trace = TraceView.from_json(jaeger.wait_for_trace(trace_id, min_spans=6, timeout=60))
    parent_run = trace.named("invoke_agent planner")
    child_run = trace.named("invoke_agent dispatcher")
    tool_span = trace.named("execute_tool ask_dispatch")
    assert trace.parent(tool_span) == parent_run
    assert trace.parent(child_run) == tool_span, trace.outline()
    assert [s.name for s in trace.children(child_run)] == ["chat dispatcher"]
