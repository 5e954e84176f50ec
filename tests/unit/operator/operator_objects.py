"""Objects for the operator's unit tests, as the API server would hand them over."""

from __future__ import annotations

from typing import Any

from agency_runtime.api.agent import Agent
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.api.run import AgentRun

NAMESPACE = "fleet"
RUN_UID = "11111111-2222-3333-4444-555555555555"


def run_body(name: str = "r1", agent: str = "helper", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": RUN_UID,
            "generation": 1,
            "annotations": {},
        },
        "spec": {"agentRef": {"name": agent}, "input": "check the fleet", **spec},
    }


def agent_obj(
    model: str = "openai/gpt-4o-mini",
    labels: dict[str, str] | None = None,
    fallbacks: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Agent:
    return Agent.from_k8s(
        {
            "metadata": {"name": "helper", "namespace": NAMESPACE, "labels": labels or {}},
            "spec": {
                "model": {
                    "name": model,
                    "apiBase": "https://llm.example.com/v1",
                    "credentialsSecretRef": {"name": "model-key", "key": "apiKey"},
                    "fallbacks": fallbacks or [],
                },
                "instructions": "Help.",
                **spec,
            },
        }
    )


def policy_obj(name: str = "default", **spec: Any) -> AgentPolicy:
    return AgentPolicy.from_k8s({"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})


def run_obj(**spec: Any) -> AgentRun:
    return AgentRun.from_k8s(run_body(**spec))
