"""Budgets stop a run before a call could cross a limit, with the usage of every call made so far."""

from __future__ import annotations

import time

from agency_runtime.api.common import RunPhase
from agency_runtime.contract import Budget
from agency_runtime.journal import Kind
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import JsonDict, Reply, Responder, call, delay, reply
from unit.runtime.runtime_support import Runner, agent


def _requested_cap(body: JsonDict) -> int | None:
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    return None if value is None else int(value)


def _provider(prompt_tokens: int, wants_output: int) -> Responder:
    """What a provider does: it never returns more output tokens than the request's max_tokens."""

    def answer(body: JsonDict) -> Reply:
        cap = _requested_cap(body)
        output = wants_output if cap is None else min(wants_output, cap)
        return reply(tool_calls=[call("update_plan", {"plan": "keep going"})], usage=(prompt_tokens, output))

    return answer


def _journaled_usage(runner: Runner) -> tuple[int, int, float]:
    answers = [r.data for r in runner.journal_records() if r.kind is Kind.RESULT and r.key.endswith("/model")]
    return (
        sum(a["inputTokens"] for a in answers),
        sum(a["outputTokens"] for a in answers),
        sum(a["costUSD"] for a in answers),
    )


def test_token_limit_stops_the_run_before_a_call_could_cross_it(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("tokens", [_provider(100, 400)], repeat_last=True)

    result = runner.run(agent(scripted_llm.base_url, "tokens"), budget=Budget(max_tokens=1000))

    assert result.phase is RunPhase.BUDGET_EXCEEDED
    assert result.limit == "tokens"
    assert "token limit of 1000" in result.message
    assert result.usage.total_tokens <= 1000
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cost_usd) == _journaled_usage(
        runner
    )
    assert result.steps == len(scripted_llm.requests("tokens")) >= 2
    caps = [_requested_cap(b) for b in scripted_llm.requests("tokens")]
    assert caps[-1] is not None
    assert caps[-1] < 400, "the last call's output was capped to what the budget had left"


def test_cost_limit_stops_the_run_before_a_call_could_cross_it(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    # gpt-4o-mini is in litellm's price list: $0.15 per million input tokens, $0.60 per million output.
    scripted_llm.script("gpt-4o-mini", [_provider(10, 500)], repeat_last=True)
    spec = agent(scripted_llm.base_url, "gpt-4o-mini")

    result = runner.run(spec, budget=Budget(max_cost_usd=0.001))

    assert result.phase is RunPhase.BUDGET_EXCEEDED
    assert result.limit == "cost"
    assert "cost limit of $0.001" in result.message
    assert 0.0009 < result.usage.cost_usd <= 0.001
    assert (result.usage.input_tokens, result.usage.output_tokens) == _journaled_usage(runner)[:2]
    assert abs(result.usage.cost_usd - _journaled_usage(runner)[2]) < 1e-12
    caps = [_requested_cap(b) for b in scripted_llm.requests("gpt-4o-mini")]
    assert caps[-1] is not None
    assert caps[-1] < 500, "the last call's output was capped to what the money left could buy"


def test_step_limit_stops_a_model_that_never_finishes(scripted_llm: ScriptedLLM, runner: Runner) -> None:
    scripted_llm.script(
        "steps", [reply(tool_calls=[call("update_plan", {"plan": "more"})], usage=(10, 5))], repeat_last=True
    )

    result = runner.run(agent(scripted_llm.base_url, "steps"), budget=Budget(max_steps=3))

    assert result.phase is RunPhase.BUDGET_EXCEEDED
    assert result.limit == "steps"
    assert "step limit of 3" in result.message
    assert result.steps == 3
    assert len(scripted_llm.requests("steps")) == 3
    assert (result.usage.input_tokens, result.usage.output_tokens) == (30, 15)


def test_wall_time_limit_stops_a_run_whose_model_call_outlasts_it(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script(
        "wall",
        [
            reply(tool_calls=[call("update_plan", {"plan": "wait"})], usage=(10, 5)),
            delay(30, reply("too late")),
        ],
    )
    started = time.monotonic()

    result = runner.run(agent(scripted_llm.base_url, "wall"), budget=Budget(max_wall_seconds=3))

    assert result.phase is RunPhase.BUDGET_EXCEEDED
    assert result.limit == "wall"
    assert "wall-time limit" in result.message
    assert time.monotonic() - started < 10, "the call was cut at the limit, not left to its own timeout"
    assert (result.steps, result.usage.input_tokens, result.usage.output_tokens) == (1, 10, 5)


def test_the_agents_own_pricing_counts_cost_for_a_model_litellm_cannot_price(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("selfhosted", [_provider(10, 100)], repeat_last=True)
    pricing = {
        "inputPerMillionTokensUSD": 1000.0,
        "outputPerMillionTokensUSD": 2000.0,
    }  # $0.001 / $0.002 a token
    spec = agent(scripted_llm.base_url, "selfhosted", model={"pricing": pricing})

    result = runner.run(spec, budget=Budget(max_cost_usd=0.5))

    first = next(r for r in runner.journal_records() if r.kind is Kind.RESULT and r.key == "step-1/model")
    assert abs(first.data["costUSD"] - (10 * 0.001 + 100 * 0.002)) < 1e-9
    assert (result.phase, result.limit) == (RunPhase.BUDGET_EXCEEDED, "cost")
    assert 0.21 <= result.usage.cost_usd <= 0.5
