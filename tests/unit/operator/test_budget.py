from __future__ import annotations

from datetime import UTC, datetime

from operator_objects import run_body

from agency_operator.budget import daily_refusal, seconds_until_tomorrow, usage_today
from agency_operator.tally import RunTally
from agency_runtime.api.common import DailyBudget

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def _run(name: str, started: str | None, tokens: tuple[int, int] = (0, 0), agent: str = "helper") -> RunTally:
    body = run_body(name=name, agent=agent)
    body["status"] = {"usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "costUSD": 0.01}}
    if started:
        body["status"]["startTime"] = started
    return RunTally.from_k8s(body)


def test_usage_today_counts_runs_of_the_agent_started_today_only() -> None:
    runs = [
        _run("a", "2026-11-25T01:00:00Z", (100, 10)),
        _run("b", "2026-11-24T23:59:59Z", (1000, 0)),  # yesterday
        _run("c", None),  # not started
        _run("d", "2026-11-25T02:00:00Z", (5, 5), agent="other"),
    ]
    used = usage_today(runs, "helper", NOW)
    assert (used.date, used.runs, used.total_tokens) == ("2026-11-25", 1, 110)
    assert used.cost_usd == 0.01


def test_spent_daily_budget_refuses_naming_the_limit_and_when_it_rolls() -> None:
    used = usage_today([_run("a", "2026-11-25T01:00:00Z", (90, 20))], "helper", NOW)
    refusal = daily_refusal("helper", "default", DailyBudget(max_tokens=100, max_runs=5), used)
    assert refusal is not None
    assert refusal.reason == "DailyBudgetExhausted"
    assert "110 of 100 tokens" in refusal.message
    assert "00:00 UTC" in refusal.message
    assert not refusal.permanent


def test_budget_left_means_no_refusal() -> None:
    used = usage_today([_run("a", "2026-11-25T01:00:00Z", (10, 10))], "helper", NOW)
    assert daily_refusal("helper", "default", DailyBudget(max_tokens=100, max_runs=2), used) is None
    assert daily_refusal("helper", "default", None, used) is None


def test_window_rolls_at_midnight_utc() -> None:
    assert seconds_until_tomorrow(NOW) == 7 * 3600


def test_a_run_tally_reads_what_the_agent_counts_straight_from_the_runs_json() -> None:
    body = run_body(name="r7")
    body["status"] = {
        "phase": "Succeeded",
        "startTime": "2026-11-25T01:00:00Z",
        "completionTime": "2026-11-25T01:02:03Z",
        "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10, "costUSD": 0.25},
        "result": "x" * 32_000,
    }
    tally = RunTally.from_k8s(body)
    assert (tally.name, tally.agent, tally.phase, tally.finished) == ("r7", "helper", "Succeeded", True)
    assert tally.completion_time == datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
    assert (tally.input_tokens, tally.output_tokens, tally.cost_usd) == (7, 3, 0.25)
    fresh = RunTally.from_k8s(run_body(name="r8"))  # just created: no status yet
    assert (fresh.phase, fresh.start_time, fresh.finished, fresh.input_tokens) == (None, None, False, 0)
