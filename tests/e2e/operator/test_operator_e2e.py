"""Done means: Agent, AgentPolicy and AgentRun applied; the operator runs the real runtime (local executor)
against the scripted model; the run succeeds, `kubectl get agentrun` shows it, and its identity is gone."""

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
from agency_testbed.llm_script import reply

MODEL = "openai/gpt-4o-mini"  # a model litellm prices offline, so the run has a cost


def test_applied_run_succeeds_shows_its_usage_and_leaves_no_identity(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.script("gpt-4o-mini", [reply("All 12 reefers are within range.", usage=(1200, 40))])
    the_agent = agent(namespace, model=MODEL)
    the_agent["spec"]["model"]["apiBase"] = scripted_llm.base_url
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, models={"allowed": ["openai/*"]}, identity={"clusterRoles": [{"name": "view"}]}),
        the_agent,
        run(namespace, "check-reefers", input="Check the reefers."),
    )
    operator.start(executor="local", env={"AGENCY_LOCAL_JOURNAL": "kubernetes"})  # the journal a Pod uses

    status = wait_for_phase(testbed, namespace, "check-reefers", "Succeeded", timeout=120)
    assert status["result"] == "All 12 reefers are within range."
    assert status["stepCount"] == 1
    assert status["usage"]["inputTokens"] == 1200
    assert status["usage"]["outputTokens"] == 40
    assert status["usage"]["totalTokens"] == 1240
    assert status["usage"]["costUSD"] > 0

    columns = kubectl("get", "agentrun", "check-reefers", "-n", namespace, "-o", "wide").stdout.split("\n")
    header, row = columns[0].split(), dict(zip(columns[0].split(), columns[1].split(), strict=False))
    assert {"PHASE", "STEPS", "TOKENS", "COST"} <= set(header)
    assert (row["PHASE"], row["STEPS"], row["TOKENS"]) == ("Succeeded", "1", "1240")
    assert float(row["COST"]) == status["usage"]["costUSD"]

    (request,) = scripted_llm.requests("gpt-4o-mini")
    assert [m["content"] for m in request["messages"] if m["role"] == "user"] == ["Check the reefers."]

    uid = api_get(testbed, run_path(namespace, "check-reefers"))["metadata"]["uid"]  # type: ignore[index]
    # The runtime kept its journal with the run's own token, as the generated Role allows.
    head = api_get(
        testbed, f"/api/v1/namespaces/{namespace}/configmaps/agency-run-check-reefers.journal-head"
    )
    assert head is not None
    assert head["metadata"]["ownerReferences"][0]["uid"] == uid
    selector = f"agency.dev/run-uid={uid}"
    wait_for(
        lambda: (
            api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-check-reefers")
            is None
            and not api_list(testbed, "/apis/rbac.authorization.k8s.io/v1/rolebindings", selector)
            and not api_list(
                testbed, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", selector
            )
        ),
        30,
        "the run's ServiceAccount, Role and RoleBindings to be gone",
    )
