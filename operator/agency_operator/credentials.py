"""Model credentials are checked before anything starts: the Secret and the key in it must exist.

Each model (the primary, every fallback, the judge) gets the key its own `credentialsSecretRef` names, in
a variable of its own (`key_variables`), so no provider is ever sent another provider's key.

A misspelt Secret or key is the most common wiring error of agent operators; a run that starts anyway
fails deep in the model client with a provider error that names neither. Here the run waits instead,
with a condition and an Event naming the Secret and the key, and starts once they exist.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from agency_operator.apply import side_by_side
from agency_operator.kube import Kube, path_for
from agency_operator.resolve import Refusal
from agency_runtime.api.agent import Agent
from agency_runtime.api.common import SecretKeyReference
from agency_runtime.contract import JUDGE_API_KEY, MODEL_API_KEY, fallback_api_key


def key_variables(agent: Agent) -> Iterator[tuple[str, str, SecretKeyReference]]:
    """Every Secret key the agent's models need: the runtime's variable, the field naming it, the key."""
    model = agent.spec.model
    if model.credentials_secret_ref is not None:
        yield MODEL_API_KEY, "spec.model.credentialsSecretRef", model.credentials_secret_ref
    for i, fallback in enumerate(model.fallbacks):
        if fallback.credentials_secret_ref is not None:
            where = f"spec.model.fallbacks[{i}].credentialsSecretRef"
            yield fallback_api_key(i), where, fallback.credentials_secret_ref
    judge = agent.spec.judge
    if judge is not None and judge.model.credentials_secret_ref is not None:
        yield JUDGE_API_KEY, "spec.judge.model.credentialsSecretRef", judge.model.credentials_secret_ref


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


def secret_names(agent: Agent) -> list[str]:
    """The Secrets the agent's models take their keys from, each once, sorted."""
    return sorted({ref.name for _variable, _where, ref in key_variables(agent)})


def secret_path(namespace: str, name: str) -> str:
    return path_for("v1", "secrets", namespace, name)


def check_read(agent: Agent, secrets: Mapping[str, Mapping[str, Any] | None]) -> Refusal | None:
    """Pure: the first missing Secret or key among the agent's model credentials, given every Secret it
    names as read (None: it does not exist); None when all exist."""
    namespace = agent.metadata.namespace or ""
    for _variable, where, ref in key_variables(agent):
        refusal = check_secret(secrets[ref.name], ref, where, agent.metadata.name, namespace)
        if refusal is not None:
            return refusal
    return None


def check_credentials(kube: Kube, agent: Agent) -> Refusal | None:
    """`check_read` on the agent's Secrets, each read once, all of them side by side."""
    namespace = agent.metadata.namespace or ""
    names = secret_names(agent)
    bodies = side_by_side([partial(kube.get_or_none, secret_path(namespace, n)) for n in names])
    return check_read(agent, dict(zip(names, bodies, strict=True)))


def read_model_keys(kube: Kube, agent: Agent) -> dict[str, str]:
    """Each model's key by variable, for a local process (a Pod gets them through secretKeyRefs instead)."""
    keys: dict[str, str] = {}
    secrets: dict[str, Mapping[str, Any]] = {}
    for variable, _where, ref in key_variables(agent):
        if ref.name not in secrets:
            secrets[ref.name] = kube.get(secret_path(agent.metadata.namespace or "", ref.name))
        keys[variable] = base64.b64decode(secrets[ref.name]["data"][ref.key]).decode("utf-8")
    return keys
