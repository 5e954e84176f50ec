"""What keeps a run from starting: its policy, its credentials, its budget; and what the user sees."""

from __future__ import annotations

from typing import Any

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    OperatorFactory,
    agent,
    api_get,
    api_list,
    apply,
    condition,
    policy,
    run,
    run_path,
    run_status,
    secret,
    wait_for,
    wait_for_phase,
)


def _wait_for_condition(
    testbed: Testbed, namespace: str, name: str, type_: str, reason: str, timeout: float = 60.0
) -> dict[str, Any]:
    def found() -> bool:
        cond = condition(run_status(testbed, namespace, name), type_)
        return cond is not None and cond["reason"] == reason

    wait_for(
        found,
        timeout,
        f"{type_}={reason} on AgentRun {name}",
        lambda: str(run_status(testbed, namespace, name)),
    )
    cond = condition(run_status(testbed, namespace, name), type_)
    assert cond is not None
    return cond


def _events(testbed: Testbed, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in api_list(testbed, f"/api/v1/namespaces/{namespace}/events")
        if e["involvedObject"].get("name") == name
    ]


def _status_of(testbed: Testbed, namespace: str, plural: str, name: str) -> dict[str, Any]:
    found = api_get(testbed, f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/{plural}/{name}") or {}
    status: dict[str, Any] = found.get("status") or {}
    return status


def _wait_for_event(testbed: Testbed, namespace: str, name: str, reason: str) -> dict[str, Any]:
    """The first Event about `name` with `reason` (Events are posted just after the status is written)."""

    def found() -> list[dict[str, Any]]:
        return [e for e in _events(testbed, namespace, name) if e["reason"] == reason]

    wait_for(found, 30, f"an Event {reason} about {name}")
    return found()[0]


def _no_identity(testbed: Testbed, namespace: str) -> bool:
    return api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is None


def test_policy_forbidding_the_agents_model_blocks_the_run_with_a_readable_condition(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, models={"allowed": ["anthropic/*"]}),
        agent(namespace, model="openai/gpt-4o"),
        run(namespace),
    )
    operator.start(executor="local", env=STUB_ENV)
    cond = _wait_for_condition(testbed, namespace, "r1", "Admitted", "ModelNotAllowed")
    assert cond["status"] == "False"
    assert cond["message"] == (
        "Agent helper uses model openai/gpt-4o (spec.model.name), which AgentPolicy default does not allow "
        "(spec.models.allowed: anthropic/*)."
    )
    assert run_status(testbed, namespace, "r1")["phase"] == "Pending"
    assert _no_identity(testbed, namespace)
    event = _wait_for_event(testbed, namespace, "r1", "ModelNotAllowed")
    assert event["type"] == "Warning"
    assert event["message"] == cond["message"]


def test_a_blocked_run_starts_once_its_policy_allows_the_model(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, models={"allowed": ["anthropic/*"]}),
        agent(namespace),
        run(namespace),
    )
    operator.start(executor="local", env=STUB_ENV)
    _wait_for_condition(testbed, namespace, "r1", "Admitted", "ModelNotAllowed")
    apply(kubectl, policy(namespace, models={"allowed": ["anthropic/*", "openai/*"]}))
    wait_for_phase(testbed, namespace, "r1", "Succeeded")
    # The refusal was a Warning of its own; the start is one Event that tells admission, credentials and
    # identity in order (one request, not one per condition).
    events = _events(testbed, namespace, "r1")
    assert {e["type"] for e in events if e["reason"] == "ModelNotAllowed"} == {"Warning"}
    started = [e for e in events if "Admitted: " in e["message"]]
    assert len(started) == 1, [e["message"] for e in events]
    message = started[0]["message"]
    assert started[0]["type"] == "Normal"
    assert message.index("Admitted: Agent helper is governed by AgentPolicy default.") < message.index(
        "Found: The model credentials exist."
    )
    assert message.index("Found: ") < message.index("Bound: ServiceAccount agency-run-r1")
    assert not [e for e in events if e["reason"] in ("Found", "Bound")]


def test_agent_status_reports_its_policy_and_refusal_and_policy_changes_recheck_it(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl, secret(namespace), policy(namespace, models={"allowed": ["anthropic/*"]}), agent(namespace)
    )
    operator.start(executor="local", env=STUB_ENV)
    path = f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agents/helper"

    def ready() -> dict[str, Any] | None:
        return condition(((api_get(testbed, path) or {}).get("status") or {}), "Ready")

    wait_for(lambda: (ready() or {}).get("reason") == "ModelNotAllowed", 30, "the agent to be refused")
    apply(kubectl, policy(namespace, models={"allowed": ["openai/*"]}))
    wait_for(
        lambda: (ready() or {}).get("status") == "True", 30, "the agent to be Ready after the policy change"
    )
    assert _status_of(testbed, namespace, "agents", "helper")["boundPolicyRef"] == {"name": "default"}
    wait_for(
        lambda: _status_of(testbed, namespace, "agentpolicies", "default").get("agents") == 1,
        30,
        "the policy to count its agent",
    )


def test_an_agent_ready_at_once_tells_its_budget_and_readiness_in_one_event(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace))
    operator.start(executor="local", env=STUB_ENV)

    ready = _wait_for_event(testbed, namespace, "helper", "Ready")

    assert ready["type"] == "Normal"
    assert ready["message"] == (
        "WithinBudget: The agent has daily budget left. "
        "Ready: Governed by AgentPolicy default; new runs start."
    )
    assert [e["reason"] for e in _events(testbed, namespace, "helper")] == ["Ready"]


def test_missing_secret_holds_the_run_naming_the_secret_and_key(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, policy(namespace), agent(namespace), run(namespace))
    operator.start(executor="local", env=STUB_ENV)
    cond = _wait_for_condition(testbed, namespace, "r1", "CredentialsReady", "SecretNotFound")
    assert "Secret model-key" in cond["message"]
    assert "key apiKey" in cond["message"]
    assert _no_identity(testbed, namespace)
    event = _wait_for_event(testbed, namespace, "r1", "SecretNotFound")
    assert (event["type"], event["message"]) == ("Warning", cond["message"])


def test_missing_secret_key_holds_the_run_until_the_key_exists(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl, secret(namespace, data={"other": "x"}), policy(namespace), agent(namespace), run(namespace)
    )
    operator.start(executor="local", env=STUB_ENV)
    cond = _wait_for_condition(testbed, namespace, "r1", "CredentialsReady", "SecretKeyNotFound")
    assert cond["message"] == (
        "Agent helper takes its model key from Secret model-key, key apiKey "
        "(spec.model.credentialsSecretRef), but Secret model-key has no key apiKey (its keys: other); "
        "the run waits until it does."
    )
    assert run_status(testbed, namespace, "r1")["phase"] == "Pending"
    assert _no_identity(testbed, namespace)
    apply(kubectl, secret(namespace, data={"other": "x", "apiKey": "sk-test"}))
    wait_for_phase(testbed, namespace, "r1", "Succeeded")


def test_run_budget_above_its_policy_fails_the_run(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, budgets={"perRun": {"maxTokens": 1000}}),
        agent(namespace),
        run(namespace, budget={"maxTokens": 5000}),
    )
    operator.start(executor="local", env=STUB_ENV)
    status = wait_for_phase(testbed, namespace, "r1", "Failed")
    cond = condition(status, "Ready")
    assert cond is not None
    assert cond["reason"] == "BudgetAbovePolicy"
    assert "spec.budget.maxTokens=5000" in cond["message"]
    assert "spec.budgets.perRun.maxTokens=1000" in cond["message"]
    assert _no_identity(testbed, namespace)


def test_agent_whose_daily_budget_is_spent_gets_no_new_runs(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, budgets={"perAgentDaily": {"maxTokens": 100}}),
        agent(namespace),
        run(namespace, "r1", ask={"usage": {"inputTokens": 90, "outputTokens": 20, "costUSD": 0.01}}),
    )
    operator.start(executor="local", env=STUB_ENV)
    wait_for_phase(testbed, namespace, "r1", "Succeeded")
    apply(kubectl, run(namespace, "r2"))
    cond = _wait_for_condition(testbed, namespace, "r2", "Admitted", "DailyBudgetExhausted")
    assert "110 of 100 tokens" in cond["message"]
    assert "00:00 UTC" in cond["message"]
    assert run_status(testbed, namespace, "r2")["phase"] == "Pending"

    def budget() -> dict[str, Any]:
        return condition(_status_of(testbed, namespace, "agents", "helper"), "DailyBudgetAvailable") or {}

    wait_for(lambda: budget().get("status") == "False", 30, "the agent to report its daily budget spent")
    usage = _status_of(testbed, namespace, "agents", "helper")["usageToday"]
    assert (usage["runs"], usage["totalTokens"]) == (1, 110)


def test_finished_run_is_deleted_after_its_ttl(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace),
        agent(namespace),
        run(namespace, ttlSecondsAfterFinished=2),
    )
    operator.start(executor="local", env=STUB_ENV)
    wait_for_phase(testbed, namespace, "r1", "Succeeded")
    wait_for(
        lambda: api_get(testbed, run_path(namespace, "r1")) is None, 30, "the finished run to be deleted"
    )
