"""The admission webhook: `kubectl apply` refuses what the operator's policy would refuse later, naming the
field; with the operator down the apiserver lets it through (failurePolicy Ignore) and the operator's
condition refuses it when it is back."""

from __future__ import annotations

import json
from typing import Any

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    OperatorFactory,
    OperatorProcess,
    agent,
    api_get,
    apply,
    condition,
    policy,
    run,
    run_path,
    secret,
    wait_for,
    wait_for_phase,
)
from agency_testbed.procs import free_port

CONFIGURATION = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/agency.dev"
POLICY = "cold-chain"


def _refusal(kubectl: Kubectl, obj: dict[str, Any], *args: str) -> str:
    """What `kubectl apply` says when it refuses `obj`; empty when it accepted it."""
    proc = kubectl("apply", *args, "-f", "-", stdin=json.dumps(obj), check=False)
    return proc.stderr if proc.returncode else ""


def _start_with_webhook(operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed) -> OperatorProcess:
    """An operator serving the webhook, once the apiserver calls it: its configuration points at this
    operator's port and a run over budget (dry-run) is refused."""
    port = free_port()
    process = operator.start(
        executor="local",
        env={**STUB_ENV, "AGENCY_WEBHOOK_PORT": str(port), "AGENCY_WEBHOOK_HOST": "127.0.0.1"},
    )

    def configured() -> bool:
        webhooks = (api_get(testbed, CONFIGURATION) or {}).get("webhooks") or []
        return any(f":{port}/" in w["clientConfig"].get("url", "") for w in webhooks)

    wait_for(configured, 60, f"the webhook configuration to point at port {port}", process.log_tail)
    probe = run(operator.namespace, "probe", budget={"maxTokens": 999_999})
    wait_for(
        lambda: _refusal(kubectl, probe, "--dry-run=server"),
        30,
        "the apiserver to call the webhook",
        process.log_tail,
    )
    return process


def _governed(namespace: str) -> list[dict[str, Any]]:
    return [
        secret(namespace),
        policy(namespace, POLICY, budgets={"perRun": {"maxTokens": 50_000}}),
        agent(namespace),
    ]


def test_run_over_its_policy_budget_is_refused_at_apply_naming_the_field(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, *_governed(namespace))
    _start_with_webhook(operator, kubectl, testbed)
    greedy = run(namespace, "greedy", budget={"maxTokens": 100_000})

    for args in (("--dry-run=server",), ()):
        message = _refusal(kubectl, greedy, *args)
        assert "spec.budget.maxTokens: 100000 is above the policy cold-chain's per-run limit 50000" in message
    assert api_get(testbed, run_path(namespace, "greedy")) is None


def test_run_within_its_policy_budget_is_accepted_and_runs(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, *_governed(namespace))
    _start_with_webhook(operator, kubectl, testbed)

    assert _refusal(kubectl, run(namespace, "modest", budget={"maxTokens": 50_000})) == ""
    wait_for_phase(testbed, namespace, "modest", "Succeeded")


def test_agent_with_a_model_its_policy_forbids_is_refused_naming_the_field(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, *_governed(namespace))
    _start_with_webhook(operator, kubectl, testbed)

    message = _refusal(kubectl, agent(namespace, "rogue", model="anthropic/claude"))
    assert "spec.model.name: model anthropic/claude is not allowed by the policy cold-chain" in message
    assert "openai/*" in message
    # And changing an accepted agent to such a model is refused too.
    message = _refusal(kubectl, agent(namespace, model="anthropic/claude"))
    assert "spec.model.name: model anthropic/claude" in message
    stored = api_get(testbed, f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agents/helper") or {}
    assert stored["spec"]["model"]["name"] == "openai/triage"


def test_agent_a_stricter_policy_now_forbids_can_still_be_labelled(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, *_governed(namespace))
    _start_with_webhook(operator, kubectl, testbed)
    apply(kubectl, policy(namespace, POLICY, models={"allowed": ["azure/*"]}))

    kubectl("label", "agent", "helper", "team=cold", "-n", namespace)  # raises if refused
    message = _refusal(kubectl, agent(namespace, model="openai/other"))
    assert "spec.model.name: model openai/other is not allowed by the policy cold-chain" in message


def test_agent_with_a_tool_its_policy_denies_is_refused_naming_the_tool(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        *_governed(namespace),
        policy(
            namespace,
            "shell-free",
            agentSelector={"matchLabels": {"team": "ops"}},
            tools={"denied": ["shell*"]},
        ),
    )
    _start_with_webhook(operator, kubectl, testbed)
    ops = agent(
        namespace,
        "ops",
        tools=[{"name": "shell_exec", "builtin": "kubernetes"}],
        policyRef={"name": "shell-free"},
    )
    ops["metadata"]["labels"] = {"team": "ops"}

    message = _refusal(kubectl, ops, "--dry-run=server")
    assert "spec.tools[0].name: tool shell_exec is denied by the policy shell-free" in message


def test_with_the_operator_down_the_run_is_accepted_and_failed_by_the_operator_when_it_is_back(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, *_governed(namespace))
    first = _start_with_webhook(operator, kubectl, testbed)
    first.kill()  # no clean stop: the configuration still points at the dead operator

    assert _refusal(kubectl, run(namespace, "greedy", budget={"maxTokens": 100_000})) == ""
    _start_with_webhook(operator, kubectl, testbed)  # back, webhook and all (and removed at teardown)
    status = wait_for_phase(testbed, namespace, "greedy", "Failed")
    cond = condition(status, "Ready")
    assert cond is not None
    assert cond["reason"] == "BudgetAbovePolicy"
    assert "spec.budget.maxTokens" in cond["message"]


def test_a_clean_stop_removes_the_operators_webhooks(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, *_governed(namespace))
    _start_with_webhook(operator, kubectl, testbed).stop()

    assert (api_get(testbed, CONFIGURATION) or {}).get("webhooks") in (None, [])
    assert _refusal(kubectl, run(namespace, "greedy", budget={"maxTokens": 100_000})) == ""
