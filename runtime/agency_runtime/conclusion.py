"""What happens after a run has ended and before it is reported: reflection, then the optional judge.

Both are side calls (see `sidecall`): journaled, counted against the budget, never able to change how the
run ended. The result carries what they did (`reflection`, `judge`) and the usage including them.
A run that failed because its model failed does not reflect: asking that model again would only repeat
the retries the run already waited through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.trace import Span

from agency_runtime import judge as judging
from agency_runtime.api.agent import MemoryScope
from agency_runtime.budget import Prices
from agency_runtime.llm import Message
from agency_runtime.reflection import Outcome, Reflection, reflect
from agency_runtime.sidecall import SideCalls

MODEL_FAILED = "ModelFailed"
"""`loop.Reason.MODEL_FAILED` (not imported: the loop imports this module)."""

if TYPE_CHECKING:
    from agency_runtime.loop import RunContext, RunResult


def conclude(
    ctx: RunContext,
    calls: SideCalls,
    prices: Prices,
    messages: Sequence[Message],
    result: RunResult,
    span: Span,
) -> None:
    """Reflect (agents with memory scope Agent) and judge (when a judge is set) a finished run."""
    outcome = Outcome(result.phase.value, result.reason, result.message, result.result, result.plan)
    task = ctx.run.input
    if ctx.memory is not None and ctx.run.agent.memory.scope is MemoryScope.AGENT:
        if result.reason == MODEL_FAILED:
            result.reflection = Reflection(None, "skipped: the run's model failed").to_json()
        else:
            reflection = reflect(calls, ctx.model, prices, ctx.memory, ctx.run_id, task, outcome, messages)
            result.reflection = reflection.to_json()
    settings = ctx.judge or judging.settings_of(ctx.run.agent)
    if settings is not None:
        api_key = settings.api_key or ctx.model.api_key
        verdict = judging.score(calls, settings, api_key, task, outcome, messages)
        result.judge = verdict.to_json()
        if verdict.score is not None:
            span.set_attribute(judging.SCORE_ATTRIBUTE, verdict.score)
    result.usage = calls.meter.usage
