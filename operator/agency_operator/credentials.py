"""Model credentials are checked before anything starts: the Secret and the key in it must exist.

A misspelt Secret or key is the most common wiring error of agent operators; a run that starts anyway
fails deep in the model client with a provider error that names neither. Here the run waits instead,
with a condition and an Event naming the Secret and the key, and starts once they exist.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any

from agency_operator.kube import Kube, path_for
from agency_operator.resolve import Refusal
from agency_runtime.api.agent import Agent
from agency_runtime.api.common import SecretKeyReference


def secret_refs(agent: Agent) -> Iterator[tuple[str, SecretKeyReference]]:
    """Every Secret key the agent's models need, with the field that names it."""
    model = agent.spec.model
    if model.credentials_secret_ref is not None:
        yield "spec.model.credentialsSecretRef", model.credentials_secret_ref
    for i, fallback in enumerate(model.fallbacks):
        if fallback.credentials_secret_ref is not None:
            yield f"spec.model.fallbacks[{i}].credentialsSecretRef", fallback.credentials_secret_ref


def check_secret(
    secret: Mapping[str, Any] | None, ref: SecretKeyReference, where: str, agent: str, namespace: str
) -> Refusal | None:
    """Pure check of one reference against the Secret as read (None: it does not exist)."""
    if secret is None:
        return Refusal(
            "SecretNotFound",
            f"Agent {agent} takes its model key from Secret {ref.name}, key {ref.key} ({where}), but Secret "
            f"{ref.name} does not exist in namespace {namespace}; the run waits until it does.",
        )
    data: Mapping[str, Any] = secret.get("data") or {}
    if ref.key not in data:
        keys = ", ".join(sorted(data)) or "none"
        return Refusal(
            "SecretKeyNotFound",
            f"Agent {agent} takes its model key from Secret {ref.name}, key {ref.key} ({where}), but Secret "
            f"{ref.name} has no key {ref.key} (its keys: {keys}); the run waits until it does.",
        )
    return None


def check_credentials(kube: Kube, agent: Agent) -> Refusal | None:
    """The first missing Secret or key among the agent's model credentials, or None when all exist."""
    namespace = agent.metadata.namespace or ""
    for where, ref in secret_refs(agent):
        secret = kube.get_or_none(path_for("v1", "secrets", namespace, ref.name))
        refusal = check_secret(secret, ref, where, agent.metadata.name, namespace)
        if refusal is not None:
            return refusal
    return None


def read_model_key(kube: Kube, agent: Agent) -> str | None:
    """The primary model's key, for a local process (a Pod gets it through a secretKeyRef instead)."""
    ref = agent.spec.model.credentials_secret_ref
    if ref is None:
        return None
    secret = kube.get(path_for("v1", "secrets", agent.metadata.namespace or "", ref.name))
    return base64.b64decode(secret["data"][ref.key]).decode("utf-8")
