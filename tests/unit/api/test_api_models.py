"""The models parse what users write and what the API server returns, in camelCase, refusing typos."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agency_runtime.api import (
    KINDS,
    Agent,
    AgentPolicy,
    AgentRun,
    AgentSchedule,
    Autonomy,
    Resource,
    RunPhase,
    Usage,
    parse,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _example_documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(EXAMPLES.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def test_examples_cover_every_kind() -> None:
    assert {doc["kind"] for doc in _example_documents()} >= set(KINDS)


@pytest.mark.parametrize(
    "document", _example_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_every_example_parses_and_survives_a_round_trip(document: dict[str, Any]) -> None:
    resource = parse(document)
    again = parse(resource.to_k8s())
    assert again == resource


def test_wire_names_are_camel_case_including_usd_and_python_names_are_snake_case() -> None:
    run = AgentRun.from_k8s(
        {
            "kind": "AgentRun",
            "metadata": {"name": "r"},
            "spec": {"agentRef": {"name": "a"}, "budget": {"maxCostUSD": 0.5, "maxWallSeconds": 60}},
        }
    )
    assert run.spec.budget is not None
    assert run.spec.budget.max_cost_usd == 0.5
    assert run.to_k8s()["spec"]["budget"] == {"maxCostUSD": 0.5, "maxWallSeconds": 60}


def test_a_misspelt_spec_field_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError, match="maxToken"):
        AgentRun.from_k8s(
            {
                "kind": "AgentRun",
                "metadata": {"name": "r"},
                "spec": {"agentRef": {"name": "a"}, "budget": {"maxToken": 5}},
            }
        )


def test_server_managed_metadata_is_ignored() -> None:
    body = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentSchedule",
        "metadata": {"name": "s", "generation": 3, "managedFields": [{"manager": "kubectl"}], "uid": "u"},
        "spec": {"agentRef": {"name": "a"}, "cron": "@hourly"},
    }
    schedule = AgentSchedule.from_k8s(body)
    assert schedule.metadata.generation == 3
    assert schedule.spec.cron == "@hourly"


class _ReadOnlyBody(Mapping[str, Any]):
    """Stands in for kopf's Body: a Mapping whose nested values are Mappings too, not dicts."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return _ReadOnlyBody(value) if isinstance(value, Mapping) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_from_k8s_accepts_mapping_bodies_like_kopfs() -> None:
    body = _ReadOnlyBody(
        {"kind": "Agent", "metadata": {"name": "a"}, "spec": {"model": {"name": "m"}, "instructions": "i"}}
    )
    agent = Agent.from_k8s(body)
    assert agent.spec.model.name == "m"
    assert agent.status.runs_in_flight == 0


def test_policy_defaults_give_every_risk_class_an_autonomy_and_bound_every_run() -> None:
    policy = AgentPolicy.from_k8s({"kind": "AgentPolicy", "metadata": {"name": "p"}, "spec": {}})
    assert policy.spec.autonomy.read_only.level is Autonomy.ACT
    assert policy.spec.autonomy.destructive.level is Autonomy.PROPOSE
    assert policy.spec.budgets.per_run.max_steps == 50
    assert policy.spec.budgets.per_run.max_wall_seconds == 900
    assert policy.spec.models.allowed == ["*"]


def test_parse_refuses_a_kind_that_is_not_ours() -> None:
    with pytest.raises(ValueError, match="ConfigMap"):
        parse({"kind": "ConfigMap", "metadata": {"name": "c"}})


@pytest.mark.parametrize("kind", KINDS.values(), ids=lambda k: k.__name__)
def test_each_kind_knows_its_kind_name(kind: type[Resource]) -> None:
    assert kind.model_fields["kind"].default == kind.__name__


def test_finished_phases_are_the_terminal_ones() -> None:
    assert {phase for phase in RunPhase if phase.finished} == {
        RunPhase.SUCCEEDED,
        RunPhase.FAILED,
        RunPhase.BUDGET_EXCEEDED,
        RunPhase.CANCELLED,
    }


def test_usage_totals_stay_consistent_as_calls_add_up() -> None:
    usage = Usage().plus(100, 20, 0.01).plus(50, 5, 0.002)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (150, 25, 175)
    assert usage.cost_usd == pytest.approx(0.012)


@pytest.mark.parametrize(
    ("api_base", "parses"),
    [
        ("http://127.0.0.1:9/v1", True),
        ("https://[2001:db8::1]:9443/v1", True),
        ("http://user:secret@models.example.com:8443", True),
        ("http://models.example.com:99999/v1", False),  # urlsplit: port out of range
        ("http://models.example.com:x/v1", False),  # urlsplit: port not a number
        ("http://[0]/v1", False),  # urlsplit: not an IPv6 address
    ],
)
def test_a_model_url_is_one_the_operator_and_the_runtime_can_parse(api_base: str, parses: bool) -> None:
    agent = {
        "kind": "Agent",
        "metadata": {"name": "a"},
        "spec": {"model": {"name": "openai/x", "apiBase": api_base}, "instructions": "Help."},
    }
    if parses:
        Agent.from_k8s(agent)
    else:
        with pytest.raises(ValidationError, match="apiBase"):
            Agent.from_k8s(agent)
