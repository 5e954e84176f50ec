from __future__ import annotations

from operator_objects import agent_obj, policy_obj, run_obj

from agency_operator.resolve import Refusal, check_agent, matches, policy_for, run_budget
from agency_runtime.contract import Budget


def test_star_matches_any_run_of_characters_including_slashes() -> None:
    assert matches("anthropic/claude-sonnet-4-5", ["anthropic/*"])
    assert matches("openai/gpt-4o", ["*"])
    assert not matches("openai/gpt-4o", ["anthropic/*", "openai/gpt-4o-mini"])


def test_agent_is_governed_by_the_only_policy_selecting_it() -> None:
    chosen = policy_for(
        agent_obj(labels={"team": "ops"}),
        [
            policy_obj("ops", agentSelector={"matchLabels": {"team": "ops"}}),
            policy_obj("dev", agentSelector={"matchLabels": {"team": "dev"}}),
        ],
    )
    assert not isinstance(chosen, Refusal)
    assert chosen.metadata.name == "ops"


def test_agent_selected_by_two_policies_must_choose_with_policy_ref() -> None:
    refusal = policy_for(agent_obj(), [policy_obj("a"), policy_obj("b")])
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "AmbiguousPolicy"
    assert "a, b" in refusal.message


def test_agent_without_a_policy_does_not_run() -> None:
    refusal = policy_for(agent_obj(), [])
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "NoPolicy"


def test_policy_ref_must_exist_and_select_the_agent() -> None:
    missing = policy_for(agent_obj(policyRef={"name": "strict"}), [policy_obj("default")])
    assert isinstance(missing, Refusal)
    assert missing.reason == "PolicyNotFound"
    unselected = policy_for(
        agent_obj(policyRef={"name": "strict"}),
        [policy_obj("strict", agentSelector={"matchExpressions": [{"key": "tier", "operator": "Exists"}]})],
    )
    assert isinstance(unselected, Refusal)
    assert unselected.reason == "PolicyDoesNotSelectAgent"


def test_model_not_allowed_names_model_field_and_policy() -> None:
    refusal = check_agent(agent_obj(model="openai/gpt-4o"), policy_obj(models={"allowed": ["anthropic/*"]}))
    assert refusal == Refusal(
        "ModelNotAllowed",
        "Agent helper uses model openai/gpt-4o (spec.model.name), which AgentPolicy default does not allow "
        "(spec.models.allowed: anthropic/*).",
    )


def test_fallback_models_must_be_allowed_too() -> None:
    agent = agent_obj(model="anthropic/claude", fallbacks=[{"name": "openai/gpt-4o"}])
    refusal = check_agent(agent, policy_obj(models={"allowed": ["anthropic/*"]}))
    assert refusal is not None
    assert "spec.model.fallbacks[0].name" in refusal.message


def test_denied_tool_is_refused_even_when_allowed_matches() -> None:
    agent = agent_obj(tools=[{"name": "kubectl_delete", "builtin": "kubernetes"}])
    refusal = check_agent(agent, policy_obj(tools={"allowed": ["*"], "denied": ["*_delete"]}))
    assert refusal is not None
    assert refusal.reason == "ToolNotAllowed"
    assert "spec.tools[0] (kubectl_delete)" in refusal.message


def test_run_budget_is_the_policys_lowered_by_the_run() -> None:
    budget = run_budget(
        run_obj(budget={"maxTokens": 500, "maxWallSeconds": 60}),
        policy_obj(budgets={"perRun": {"maxTokens": 1000, "maxCostUSD": 0.5}}),
    )
    assert budget == Budget(max_tokens=500, max_cost_usd=0.5, max_steps=50, max_wall_seconds=60)


def test_run_budget_above_the_policys_is_a_permanent_refusal() -> None:
    refusal = run_budget(
        run_obj(budget={"maxCostUSD": 2.0}), policy_obj(budgets={"perRun": {"maxCostUSD": 0.5}})
    )
    assert isinstance(refusal, Refusal)
    assert refusal.permanent
    assert refusal.reason == "BudgetAbovePolicy"
    assert "spec.budget.maxCostUSD=2.0" in refusal.message


def test_delegated_run_budget_above_the_childs_policy_is_clamped_not_refused() -> None:
    delegated = run_obj(
        budget={"maxTokens": 9000, "maxCostUSD": 2.0},
        parentRunRef={"name": "parent"},
        trigger={"type": "Delegation"},
    )
    budget = run_budget(delegated, policy_obj(budgets={"perRun": {"maxTokens": 1000, "maxCostUSD": 0.5}}))
    assert budget == Budget(max_tokens=1000, max_cost_usd=0.5, max_steps=50, max_wall_seconds=900)
