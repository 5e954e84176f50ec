"""Without the run's Kubernetes token (a local `agency run`) the `kubernetes` tool is left out, saying why;
its risk follows the verb and a patch is undone by putting back exactly what it overwrote."""

from __future__ import annotations

import httpx
import pytest

from agency_runtime.api.agent import AgentSpec
from agency_runtime.api.common import Risk
from agency_runtime.kube import KubeClient
from agency_runtime.tools.kubernetes import KubernetesTool, inverse_merge_patch
from agency_runtime.tools.registry import build_registry


def _spec() -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "instructions": "x",
            "model": {"name": "openai/x"},
            "tools": [{"name": "cluster", "builtin": "kubernetes"}],
        }
    )


def test_a_local_run_without_a_token_leaves_the_kubernetes_tool_out_and_says_why() -> None:
    registry = build_registry(_spec(), None, None)

    assert registry.get("cluster") is None
    assert registry.skipped == [
        "cluster: built-in kubernetes needs the run's Kubernetes token "
        "(runs the operator starts have one; a local `agency run` does not)"
    ]


@pytest.mark.parametrize(
    ("verb", "risk"),
    [
        ("get", Risk.READ_ONLY),
        ("list", Risk.READ_ONLY),
        ("patch", Risk.IDEMPOTENT),
        ("create", Risk.DESTRUCTIVE),
    ],
)
def test_risk_follows_the_verb(verb: str, risk: Risk) -> None:

    with httpx.Client() as http:
        tool = KubernetesTool("cluster", None, KubeClient(http), "ns", risk=None)
        assert tool.risk({"verb": verb}) is risk
        assert tool.can_undo({"verb": verb}) is (verb in {"patch", "create"})


def test_undoing_a_patch_restores_overwritten_values_and_removes_added_ones() -> None:
    before = {"metadata": {"labels": {"tier": "web"}}, "data": {"mode": "off"}}
    patch = {"metadata": {"labels": {"tier": "api", "owner": "ops"}}, "data": {"mode": "on"}, "extra": [1]}

    assert inverse_merge_patch(patch, before) == {
        "metadata": {"labels": {"tier": "web", "owner": None}},
        "data": {"mode": "off"},
        "extra": None,
    }
