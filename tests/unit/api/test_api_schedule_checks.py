"""Operator-side checks: what the API server's schema cannot tell about cron, time zones and budgets."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from agency_runtime.api import RunBudget, effective_run_budget, run_budget_errors, validate_schedule
from agency_runtime.api.cron import CRON_PATTERN, cron_errors

ACCEPTED = [
    "*/15 * * * *",
    "0 9 * * 1-5",
    "0,30 8-17 * * MON-FRI",
    "0 0 1 jan,jul *",
    "5 4 * * sun",
    "0 0 * * 7",
    "0 */2 1-15/3 * *",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
]
REFUSED = [
    "every day",
    "61 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 32 * *",
    "0 0 * 13 *",
    "0 0 * * 8",
    "* * * *",
    "* * * * * *",
    "*/0 * * * *",
    " 0 * * * *",
    "0 0 L * *",
    "0 9 * * MON#2",
    "@reboot",
    "@every 5m",
    "",
]


@pytest.mark.parametrize("expression", ACCEPTED)
def test_cron_pattern_accepts_ordinary_schedules_and_croniter_agrees(expression: str) -> None:
    assert re.match(CRON_PATTERN, expression)
    assert cron_errors(expression) == []


@pytest.mark.parametrize("expression", REFUSED)
def test_cron_pattern_refuses_garbage(expression: str) -> None:
    assert not re.match(CRON_PATTERN, expression)
    assert cron_errors(expression)


def test_cron_pattern_embeds_in_a_cel_string_unchanged() -> None:
    assert "'" not in CRON_PATTERN
    assert "\\" not in CRON_PATTERN


def test_a_cron_that_never_fires_is_reported() -> None:
    assert cron_errors("0 0 31 2 *", now=datetime(2025, 1, 1, tzinfo=UTC)) == ["'0 0 31 2 *' never fires"]


def test_validate_schedule_names_an_unknown_time_zone() -> None:
    problems = validate_schedule({"agentRef": {"name": "a"}, "cron": "@hourly", "timeZone": "Mars/Olympus"})
    (problem,) = problems
    assert problem.startswith("spec.timeZone: unknown time zone 'Mars/Olympus'; use an IANA name")


def test_validate_schedule_accepts_a_cron_in_a_real_time_zone_and_signals_alone() -> None:
    assert (
        validate_schedule({"agentRef": {"name": "a"}, "cron": "0 9 * * *", "timeZone": "Europe/Amsterdam"})
        == []
    )
    assert validate_schedule({"agentRef": {"name": "a"}, "signals": [{"name": "s", "type": "t"}]}) == []


def test_validate_schedule_wants_cron_or_signals() -> None:
    assert validate_schedule({"agentRef": {"name": "a"}}) == [
        "spec: a schedule needs spec.cron, spec.signals, or both"
    ]


def test_validate_schedule_reports_a_time_zone_without_cron_and_local() -> None:
    problems = validate_schedule(
        {"agentRef": {"name": "a"}, "signals": [{"name": "s", "type": "t"}], "timeZone": "Local"}
    )
    assert problems[0] == "spec.timeZone: applies only to spec.cron, which is not set"
    assert problems[1].startswith("spec.timeZone: unknown time zone 'Local'")


def test_a_run_budget_above_the_policy_is_reported_per_limit() -> None:
    policy = RunBudget(max_tokens=10_000, max_cost_usd=1.0, max_steps=20)
    run = RunBudget(max_tokens=20_000, max_cost_usd=0.5, max_wall_seconds=60)
    assert run_budget_errors(run, policy) == [
        "spec.budget.maxTokens is 20000, above the policy's per-run limit of 10000; ask for at most that"
    ]
    assert run_budget_errors(None, policy) == []


def test_the_effective_budget_is_the_lower_limit_of_run_and_policy() -> None:
    policy = RunBudget(max_tokens=10_000, max_cost_usd=1.0, max_steps=20)
    run = RunBudget(max_tokens=5_000, max_wall_seconds=60)
    assert effective_run_budget(run, policy) == RunBudget(
        max_tokens=5_000, max_cost_usd=1.0, max_steps=20, max_wall_seconds=60
    )
    assert effective_run_budget(None, policy) == policy


def test_a_significance_expression_that_does_not_compile_is_reported_with_its_signal() -> None:
    signals = [
        {"name": "ok", "type": "t", "significance": "data.celsius > 8.0"},
        {"name": "broken", "type": "t", "significance": "data.celsius >"},
    ]
    (problem,) = validate_schedule({"agentRef": {"name": "a"}, "signals": signals})
    assert problem.startswith("spec.signals[1].significance: not a valid CEL expression")
