"""The CRDs as a user meets them: documented in `kubectl explain`, useful in `kubectl get -o wide`, and the
examples apply cleanly and read back into the models the operator uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agency_runtime.api import Agent, AgentPolicy, AgentRun, AgentSchedule, Resource, parse
from agency_testbed.cluster import Kubectl
from agency_testbed.fixtures_operator import apply, run

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PLURALS = "agents,agentpolicies,agentschedules,agentruns"

pytestmark = pytest.mark.usefixtures("agency_crds")


def _apply_examples(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-R", "-f", str(EXAMPLES))


def _explain(kubectl: Kubectl, path: str) -> str:
    """`kubectl explain` output with its line wrapping undone."""
    return " ".join(kubectl("explain", path).stdout.split())


def test_explain_agent_spec_model_shows_the_field_docs(kubectl: Kubectl) -> None:
    out = _explain(kubectl, "agent.spec.model")
    assert "The language model the agent uses." in out
    assert "The litellm model id" in out
    assert "credentialsSecretRef" in out
    assert "name <string> -required-" in out


def test_explain_reaches_deep_fields_of_every_kind(kubectl: Kubectl) -> None:
    out = _explain(kubectl, "agentpolicy.spec.autonomy.destructive.level")
    assert "propose: the call waits" in out
    out = _explain(kubectl, "agentrun.spec.approvals")
    assert "can be added, never changed or removed" in out
    out = _explain(kubectl, "agentschedule.spec.timeZone")
    assert "IANA time zone" in out


def test_every_example_applies_and_reads_back_into_the_models(kubectl: Kubectl, namespace: str) -> None:
    _apply_examples(kubectl, namespace)
    items = json.loads(kubectl("get", PLURALS, "-n", namespace, "-o", "json").stdout)["items"]
    documents = [d for p in sorted(EXAMPLES.rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in documents
    )
    for item in items:
        parsed = parse(item)
        assert parsed.metadata.namespace == namespace
        assert parsed.metadata.generation == 1


def test_get_wide_shows_model_policy_usage_and_phase_columns(kubectl: Kubectl, namespace: str) -> None:
    _apply_examples(kubectl, namespace)
    agents = kubectl("get", "agents", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert agents[0].split() == [
        "NAME",
        "MODEL",
        "POLICY",
        "READY",
        "RUNNING",
        "TOKENS-TODAY",
        "COST-TODAY",
        "LAST-RUN",
        "AGE",
    ]
    assert any(
        line.split()[:2] == ["cold-chain-monitor", "anthropic/claude-sonnet-4-5"] for line in agents[1:]
    )
    runs = kubectl("get", "agentruns", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert runs[0].split() == ["NAME", "AGENT", "PHASE", "STEPS", "TOKENS", "COST", "TRIGGER", "TRACE", "AGE"]
    assert runs[1].split()[:3] == ["check-container-msku-4471", "cold-chain-monitor", "Manual"]
    plain = kubectl("get", "agentruns", "-n", namespace).stdout.splitlines()
    assert plain[0].split() == ["NAME", "AGENT", "PHASE", "STEPS", "TOKENS", "COST", "AGE"]


def test_short_names_and_the_agency_category_list_everything(kubectl: Kubectl, namespace: str) -> None:
    _apply_examples(kubectl, namespace)
    names = set(kubectl("get", "agency", "-n", namespace, "-o", "name").stdout.split())
    assert "agent.agency.dev/cold-chain-monitor" in names
    assert "agentpolicy.agency.dev/cold-chain" in names
    assert "agentschedule.agency.dev/cold-chain-watch" in names
    assert "agentrun.agency.dev/check-container-msku-4471" in names
    for short in ("ag", "agpol", "agsched", "agrun"):
        kubectl("get", short, "-n", namespace)


MINIMAL: list[tuple[type[Resource], dict[str, Any]]] = [
    (Agent, {"model": {"name": "openai/gpt-4o-mini"}, "instructions": "Be useful."}),
    (AgentPolicy, {}),
    (AgentSchedule, {"agentRef": {"name": "a"}, "signals": [{"name": "s", "type": "com.example.t"}]}),
    (AgentRun, {"agentRef": {"name": "a"}}),
]


@pytest.mark.parametrize(("kind", "spec"), MINIMAL, ids=lambda v: getattr(v, "__name__", ""))
def test_server_defaults_mean_the_same_as_model_defaults(
    kubectl: Kubectl, namespace: str, kind: type[Resource], spec: dict[str, Any]
) -> None:
    """What `kubectl get -o yaml` shows after defaulting is what the operator would assume without it."""
    body = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": kind.__name__,
        "metadata": {"name": "minimal"},
        "spec": spec,
    }
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    stored = json.loads(kubectl("get", kind.crd.plural, "minimal", "-n", namespace, "-o", "json").stdout)
    assert kind.from_k8s(stored).to_k8s()["spec"] == kind.from_k8s(body).to_k8s()["spec"]


def test_kubectl_lists_the_runs_of_one_agent_by_field_selector(kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, run(namespace, "a1", "alpha"), run(namespace, "b1", "beta"), run(namespace, "a2", "alpha"))
    out = kubectl(
        "get", "agentruns", "-n", namespace, "--field-selector", "spec.agentRef.name=alpha", "-o", "name"
    ).stdout
    assert out.split() == ["agentrun.agency.dev/a1", "agentrun.agency.dev/a2"]
