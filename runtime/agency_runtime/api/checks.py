"""Checks the API server cannot make, for the operator to run before it acts on an object.

Each returns human-readable problems naming the field, empty when all is well, so the operator can put
them in a condition message as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cel

from agency_runtime.api.common import RunBudget
from agency_runtime.api.cron import cron_errors
from agency_runtime.api.meta import plain
from agency_runtime.api.schedule import AgentScheduleSpec

_BUDGET_FIELDS = (
    ("max_tokens", "maxTokens"),
    ("max_cost_usd", "maxCostUSD"),
    ("max_steps", "maxSteps"),
    ("max_wall_seconds", "maxWallSeconds"),
)


def time_zone_errors(name: str) -> list[str]:
    """Why `name` is not a time zone Python knows; empty when it is."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return [
            f"spec.timeZone: unknown time zone {name!r}; use an IANA name such as 'Europe/Amsterdam' or 'UTC'"
        ]
    return []


def validate_schedule(spec: AgentScheduleSpec | Mapping[str, Any]) -> list[str]:
    """Problems with an AgentSchedule spec: cron syntax and firing, time zone, that it has a trigger, and
    that each signal's significance expression compiles."""
    if not isinstance(spec, AgentScheduleSpec):
        spec = AgentScheduleSpec.model_validate(plain(spec))
    problems: list[str] = []
    if spec.cron is None and not spec.signals:
        problems.append("spec: a schedule needs spec.cron, spec.signals, or both")
    if spec.cron is not None:
        problems += [f"spec.cron: {problem}" for problem in cron_errors(spec.cron)]
    if spec.time_zone is not None:
        if spec.cron is None:
            problems.append("spec.timeZone: applies only to spec.cron, which is not set")
        problems += time_zone_errors(spec.time_zone)
    for index, signal in enumerate(spec.signals):
        if signal.significance is not None:
            problems += [f"spec.signals[{index}].significance: {p}" for p in cel_errors(signal.significance)]
    return problems


def cel_errors(expression: str) -> list[str]:
    """Why a significance expression does not compile as CEL; empty when it does."""
    try:
        cel.compile(expression)
    except ValueError as error:
        first_line = str(error).splitlines()[0]
        return [f"not a valid CEL expression: {first_line}"]
    return []


def run_budget_errors(run: RunBudget | None, policy: RunBudget) -> list[str]:
    """Where an AgentRun's spec.budget asks for more than its policy's spec.budgets.perRun allows."""
    if run is None:
        return []
    problems = []
    for attribute, wire in _BUDGET_FIELDS:
        asked, allowed = getattr(run, attribute), getattr(policy, attribute)
        if asked is not None and allowed is not None and asked > allowed:
            problems.append(
                f"spec.budget.{wire} is {asked}, above the policy's per-run limit of {allowed}; "
                "ask for at most that"
            )
    return problems


def effective_run_budget(run: RunBudget | None, policy: RunBudget) -> RunBudget:
    """The limits a run works under: for each limit the lower of the run's and the policy's."""
    values: dict[str, Any] = {}
    for attribute, _ in _BUDGET_FIELDS:
        limits = [v for v in (getattr(run, attribute, None), getattr(policy, attribute)) if v is not None]
        values[attribute] = min(limits) if limits else None
    return RunBudget(**values)
