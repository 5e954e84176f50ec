"""The pure parts of the collaboration tools: child names, budget carving, skill matching, events."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from agency_runtime.api.meta import DNS_LABEL_PATTERN
from agency_runtime.budget import Meter
from agency_runtime.contract import Budget
from agency_runtime.tools.delegate import carve, child_name, exhausted
from agency_runtime.tools.discovery import skill_matches
from agency_runtime.tools.registry import build_registry
from agency_runtime.tools.signal import cloud_event
from unit.runtime.runtime_support import agent


def test_a_child_name_is_the_same_for_one_call_different_for_another_and_a_valid_run_name() -> None:
    parent = "a" * 62 + "-"
    first = child_name(parent, "uid/step-1/tool-0")

    assert first == child_name(parent, "uid/step-1/tool-0")
    assert first != child_name(parent, "uid/step-2/tool-0")
    assert len(first) <= 63
    assert re.fullmatch(DNS_LABEL_PATTERN, first)


@pytest.mark.parametrize(
    ("remaining", "tokens", "cost", "carved"),
    [
        (Budget(max_tokens=3000, max_wall_seconds=60), None, None, Budget(3000, None, None, 60)),
        (Budget(max_tokens=3000), 5000, None, Budget(3000)),
        (Budget(max_tokens=3000), 800, None, Budget(800)),
        (Budget(max_cost_usd=0.25), None, 1.0, Budget(None, 0.25)),
        (None, 500, None, Budget(500)),
    ],
)
def test_a_child_never_gets_more_than_the_parent_has_left(
    remaining: Budget | None, tokens: int | None, cost: float | None, carved: Budget
) -> None:
    assert carve(remaining, tokens, cost) == carved


def test_a_spent_budget_leaves_nothing_to_delegate() -> None:
    assert exhausted(Budget(max_tokens=10)) is not None
    assert exhausted(Budget(max_cost_usd=0.0)) is not None
    assert exhausted(Budget(max_wall_seconds=0)) is not None
    assert exhausted(Budget(max_tokens=5000, max_wall_seconds=30)) is None


def test_the_meter_says_what_is_left_of_each_limit() -> None:
    meter = Meter(Budget(max_tokens=1000, max_cost_usd=1.0, max_wall_seconds=100), 0.0, clock=lambda: 40.5)
    meter.record_call(300, 50, 0.4)

    left = meter.remaining()
    assert (left.max_tokens, left.max_wall_seconds, left.max_steps) == (650, 59, None)
    assert left.max_cost_usd == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("route-planning", True),
        ("delivery routes", True),
        ("plan route", True),
        ("ticketing", False),
        ("", True),
    ],
)
def test_a_skill_matches_its_name_or_every_word_of_the_query(query: str, matches: bool) -> None:
    skill = {"name": "route-planning", "description": "Plans delivery routes for refrigerated trucks."}
    assert skill_matches(query, skill) is matches


def test_a_published_event_is_a_cloudevent_from_the_run_with_an_id_fixed_by_the_call() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = cloud_event("cold", "run-1", "uid/step-1/tool-0", "com.example.x", {"a": 1}, None, now)
    again = cloud_event("cold", "run-1", "uid/step-1/tool-0", "com.example.x", {"a": 1}, None, now)
    other = cloud_event("cold", "run-1", "uid/step-2/tool-0", "com.example.x", {"a": 1}, None, now)

    assert event["specversion"] == "1.0"
    assert event["source"] == "agency.dev/cold/agentruns/run-1"
    assert event["time"] == "2026-01-02T03:04:05Z"
    assert event["id"] == again["id"] != other["id"]


def test_a_local_run_leaves_out_the_cluster_tools_and_says_why() -> None:
    spec = agent(
        "http://127.0.0.1:9/v1",
        "x",
        tools=[
            {"name": "find_agents", "builtin": "find_agents"},
            {"name": "delegate", "builtin": "delegate"},
            {"name": "ask_qa", "agentRef": {"name": "qa"}},
            {"name": "publish_signal", "builtin": "publish_signal"},
        ],
    )

    registry = build_registry(spec, None, None)

    assert [s.split(":")[0] for s in registry.skipped] == [
        "find_agents",
        "delegate",
        "ask_qa",
        "publish_signal",
    ]
    assert "AGENCY_SIGNAL_URL" in registry.skipped[-1]
    assert registry.get("delegate") is None
