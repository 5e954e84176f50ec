"""What the admission webhook refuses at `kubectl apply`, decided from the run, its agent and its policy."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from operator_objects import agent_obj, policy_obj, run_obj

from agency_operator.admission import (
    changed_agent_problems,
    check_agent_fields,
    check_run,
    refusal,
    self_signed_certificate,
)
from agency_operator.settings import Settings


def test_run_over_the_policy_token_limit_is_refused_naming_field_value_policy_and_limit() -> None:
    policy = policy_obj("cold-chain", budgets={"perRun": {"maxTokens": 50000}})
    problems = check_run(run_obj(budget={"maxTokens": 100000}), agent_obj(), policy)
    assert problems == [
        "spec.budget.maxTokens: 100000 is above the policy cold-chain's per-run limit 50000 "
        "(spec.budgets.perRun.maxTokens); a run may only lower its policy's limits"
    ]


def test_every_budget_field_over_its_limit_is_named() -> None:
    policy = policy_obj(
        budgets={"perRun": {"maxTokens": 10, "maxCostUSD": 1, "maxSteps": 5, "maxWallSeconds": 60}}
    )
    run = run_obj(budget={"maxTokens": 11, "maxCostUSD": 2, "maxSteps": 6, "maxWallSeconds": 61})
    fields = [problem.split(":")[0] for problem in check_run(run, agent_obj(), policy)]
    assert fields == [
        "spec.budget.maxTokens",
        "spec.budget.maxCostUSD",
        "spec.budget.maxSteps",
        "spec.budget.maxWallSeconds",
    ]


def test_run_at_or_below_the_limits_or_without_a_budget_is_accepted() -> None:
    policy = policy_obj(budgets={"perRun": {"maxTokens": 50000}})
    assert check_run(run_obj(budget={"maxTokens": 50000}), agent_obj(), policy) == []
    assert check_run(run_obj(budget={"maxTokens": 1}), agent_obj(), policy) == []
    assert check_run(run_obj(), agent_obj(), policy) == []


def test_run_limit_the_policy_leaves_unset_is_not_refused() -> None:
    policy = policy_obj(budgets={"perRun": {"maxSteps": 5}})  # no token limit in the policy
    assert check_run(run_obj(budget={"maxTokens": 10**9}), agent_obj(), policy) == []


def test_policy_default_step_limit_applies_to_runs_asking_for_more() -> None:
    problems = check_run(run_obj(budget={"maxSteps": 51}), agent_obj(), policy_obj())
    assert [p.split(":")[0] for p in problems] == ["spec.budget.maxSteps"]
    assert "limit 50 " in problems[0]


def test_agent_with_a_model_the_policy_does_not_allow_is_refused_naming_the_field() -> None:
    policy = policy_obj("cold-chain", models={"allowed": ["openai/*"]})
    problems = check_agent_fields(agent_obj(model="anthropic/claude"), policy)
    assert problems == [
        "spec.model.name: model anthropic/claude is not allowed by the policy cold-chain "
        "(spec.models.allowed: openai/*)"
    ]


def test_agent_fallback_model_outside_the_policy_is_named_by_its_index() -> None:
    policy = policy_obj(models={"allowed": ["openai/*"]})
    agent = agent_obj(model="openai/gpt-4o", fallbacks=[{"name": "openai/mini"}, {"name": "mistral/large"}])
    problems = check_agent_fields(agent, policy)
    assert [p.split(":")[0] for p in problems] == ["spec.model.fallbacks[1].name"]


def test_agent_with_a_denied_tool_is_refused_naming_the_tool_by_index() -> None:
    policy = policy_obj(
        "ops", models={"allowed": ["openai/*"]}, tools={"allowed": ["*"], "denied": ["shell*"]}
    )
    agent = agent_obj(
        tools=[{"name": "lookup", "builtin": "kubernetes"}, {"name": "shell_exec", "builtin": "kubernetes"}]
    )
    assert check_agent_fields(agent, policy) == [
        "spec.tools[1].name: tool shell_exec is denied by the policy ops (spec.tools.denied)"
    ]


def test_agent_with_a_tool_outside_the_allowed_list_is_refused() -> None:
    policy = policy_obj(models={"allowed": ["openai/*"]}, tools={"allowed": ["lookup"]})
    agent = agent_obj(tools=[{"name": "mailer", "builtin": "http"}])
    (problem,) = check_agent_fields(agent, policy)
    assert problem.startswith("spec.tools[0].name: tool mailer is not allowed by the policy default")


def test_agent_the_policy_allows_is_accepted() -> None:
    policy = policy_obj(models={"allowed": ["openai/*"]}, tools={"allowed": ["*"]})
    assert check_agent_fields(agent_obj(tools=[{"name": "lookup", "builtin": "kubernetes"}]), policy) == []


def test_changing_an_agent_is_refused_only_for_problems_the_change_brings() -> None:
    policy = policy_obj(models={"allowed": ["openai/*"]}, tools={"allowed": ["lookup"]})
    before = agent_obj(model="mistral/large", tools=[{"name": "mailer", "builtin": "http"}])
    fixed_model = agent_obj(model="openai/gpt-4o", tools=[{"name": "mailer", "builtin": "http"}])
    assert changed_agent_problems(fixed_model, before, policy) == []
    new_tool = agent_obj(
        model="mistral/large",
        tools=[{"name": "mailer", "builtin": "http"}, {"name": "pager", "builtin": "http"}],
    )
    (problem,) = changed_agent_problems(new_tool, before, policy)
    assert problem.startswith("spec.tools[1].name: tool pager")
    assert len(changed_agent_problems(before, None, policy)) == 2  # a new agent: every problem


def test_refusal_names_the_object_and_joins_every_problem() -> None:
    assert refusal("AgentRun", "r1", ["a: x", "b: y"]) == "AgentRun r1 is refused: a: x; b: y"


def test_self_signed_certificate_serves_tls_for_the_advertised_ip_and_name(tmp_path: Path) -> None:
    hostnames = ["agency-webhook.agency-system.svc", "127.0.0.1", "0.0.0.0"]  # noqa: S104 - kopf passes it
    cert_pem, key_pem = self_signed_certificate(hostnames)
    cert = x509.load_pem_x509_certificate(cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["agency-webhook.agency-system.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    (tmp_path / "tls.crt").write_bytes(cert_pem)
    (tmp_path / "tls.key").write_bytes(key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")  # a usable pair for kopf's server


@pytest.mark.parametrize(
    ("env", "port", "host"),
    [
        ({}, 0, None),
        ({"AGENCY_WEBHOOK_PORT": "9443", "AGENCY_WEBHOOK_HOST": "agency.svc"}, 9443, "agency.svc"),
    ],
)
def test_webhook_is_off_unless_a_port_is_set(env: dict[str, str], port: int, host: str | None) -> None:
    settings = Settings.from_env(env)
    assert (settings.webhook_port, settings.webhook_host) == (port, host)


def test_delegated_run_is_admitted_since_its_budget_is_a_ceiling_the_operator_clamps() -> None:
    policy = policy_obj(budgets={"perRun": {"maxTokens": 50000}})
    delegated = run_obj(
        budget={"maxTokens": 100000}, parentRunRef={"name": "parent"}, trigger={"type": "Delegation"}
    )
    assert check_run(delegated, agent_obj(), policy) == []
