"""A run's token for a local process: the TokenRequest a kubelet would make for the run's Pod.

The token is bound to the policy's audience and expires after the policy's lifetime, like the projected
token of a Pod; it dies earlier when the run ends and its ServiceAccount is deleted (`identity.revoke`).
"""

from __future__ import annotations

from agency_operator import names
from agency_operator.kube import JsonDict, Kube, path_for
from agency_runtime.api.policy import AgentPolicy


def build_token_request(policy: AgentPolicy, audience: str | None = None) -> JsonDict:
    """The TokenRequest body: the policy's lifetime and `audience`, by default the policy's (unset: the API
    server's own). The signal token asks for the signal endpoint's audience instead."""
    identity = policy.spec.identity
    spec: JsonDict = {"expirationSeconds": identity.token_expiration_seconds}
    audience = audience or identity.token_audience
    if audience:
        spec["audiences"] = [audience]
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def request_token(
    kube: Kube, namespace: str, run: str, policy: AgentPolicy, audience: str | None = None
) -> str:
    """A fresh token for the run's ServiceAccount (for `audience`, by default the policy's)."""
    path = path_for("v1", "serviceaccounts", namespace, names.service_account(run)) + "/token"
    answer = kube.create(path, build_token_request(policy, audience))
    token: str = answer["status"]["token"]
    return token
