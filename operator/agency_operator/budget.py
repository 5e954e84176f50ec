"""An agent's daily budget: what its runs used today (UTC) and whether another run may start.

Counted from the AgentRuns themselves (level-based: no counter that a restart could lose or double);
a run counts on the day it started. The window rolls at 00:00 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from agency_operator.resolve import Refusal
from agency_operator.tally import RunTally
from agency_runtime.api.agent import DailyUsage
from agency_runtime.api.common import DailyBudget, Usage


def day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def seconds_until_tomorrow(now: datetime) -> float:
    """Seconds until the daily window rolls (the next 00:00 UTC)."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today + timedelta(days=1) - now).total_seconds()


def usage_today(
    runs: Iterable[RunTally], agent: str, now: datetime, *, exclude: str | None = None
) -> DailyUsage:
    """Runs of `agent` started today and the tokens and cost they used (so far, for runs in flight)."""
    today = day(now)
    total = Usage()
    count = 0
    for run in runs:
        if run.agent != agent or run.name == exclude:
            continue
        if run.start_time is None or day(run.start_time) != today:
            continue
        count += 1
        total = total.plus(run.input_tokens, run.output_tokens, run.cost_usd)
    return DailyUsage(
        date=today,
        runs=count,
        input_tokens=total.input_tokens,
        output_tokens=total.output_tokens,
        total_tokens=total.total_tokens,
        cost_usd=total.cost_usd,
    )


def daily_refusal(agent: str, policy: str, limits: DailyBudget | None, used: DailyUsage) -> Refusal | None:
    """A refusal naming the exhausted limit, or None while the agent still has budget today."""
    if limits is None:
        return None
    spent: list[str] = []
    if limits.max_runs is not None and used.runs >= limits.max_runs:
        spent.append(f"{used.runs} of {limits.max_runs} runs")
    if limits.max_tokens is not None and used.total_tokens >= limits.max_tokens:
        spent.append(f"{used.total_tokens} of {limits.max_tokens} tokens")
    if limits.max_cost_usd is not None and used.cost_usd >= limits.max_cost_usd:
        spent.append(f"${used.cost_usd:.4f} of ${limits.max_cost_usd:.4f}")
    if not spent:
        return None
    return Refusal(
        "DailyBudgetExhausted",
        f"Agent {agent} has used {' and '.join(spent)} allowed per day by AgentPolicy {policy} "
        f"(spec.budgets.perAgentDaily) on {used.date}; the run waits until the window rolls at 00:00 UTC.",
    )
