"""Delegation with nothing but the run's own identity: no ClusterRole from the policy. The generated Role
lets the planner create its own child (the run-children admission policy checks it is one), the operator
then lets it read that child, and the child runs within what the planner has left (local executor, real
runtime, scripted model)."""

from __future__ import annotations

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    OperatorFactory,
    agent,
    api_get,
    api_list,
    apply,
    policy,
    run,
    run_path,
    secret,
    wait_for,
    wait_for_phase,
)
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply

MAX_TOKENS = 8_000


def test_a_run_delegates_with_its_own_role_only_and_the_child_gets_what_is_left_of_the_budget(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.script(
        "planner",
        [
            reply(tool_calls=[call("ask_dispatch", {"input": "Send a truck to L-7."})], usage=(2000, 100)),
            reply("Truck sent.", usage=(2300, 10)),
        ],
    )
    scripted_llm.script("dispatcher", [reply("truck 2 left for L-7", usage=(200, 20))])
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
            autonomy={"idempotent": {"level": "act"}},
            budgets={"perRun": {"maxTokens": MAX_TOKENS}},
        ),
        planner,
        dispatcher,
        run(namespace, "plan-1", agent_name="planner", input="Lot L-7 spoiled."),
    )
    operator.start(executor="local")

    status = wait_for_phase(testbed, namespace, "plan-1", "Succeeded", timeout=180)

    assert status["result"] == "Truck sent."
    (child,) = [r for r in api_list(testbed, run_path(namespace)) if r["metadata"]["name"] != "plan-1"]
    assert child["spec"]["parentRunRef"] == {"name": "plan-1"}
    assert child["spec"]["budget"]["maxTokens"] == MAX_TOKENS - 2100, "what the planner had left"
    assert child["status"]["result"] == "truck 2 left for L-7"
    assert child["metadata"]["ownerReferences"][0]["name"] == "plan-1"
    role = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/agency-run-plan-1"
    wait_for(
        lambda: api_get(testbed, role) is None, 30, "the planner's identity to be revoked as it finished"
    )
