"""A2A-style agent cards: what outside clients read to discover an Agent and its skills.

Served by the operator's HTTP server (beside the signal endpoint) at

    GET /namespaces/{namespace}/agents/{name}/.well-known/agent-card.json

in the shape of the A2A protocol's AgentCard (protocolVersion, name, description, url, version,
capabilities, defaultInputModes/defaultOutputModes, skills with id, name and description, securitySchemes).
The skills are the ones the Agent advertises in its status (those of a Ready agent), so a card never
offers an agent that cannot run.

Not anonymous: an Agent is namespaced data (its description and skills say what a team runs), so a card
is shown to whoever may `get` that Agent, exactly as `kubectl get agent` would be. Callers bring a
Kubernetes token for the server's audience (the same as the signal endpoint's, `agency.dev/signals`),
which a TokenReview checks, and a SubjectAccessReview checks `get` on the Agent. Runs may get Agents (their
Role grants it for find_agents), so an agent can read another's card with its signal token.

The card does not claim an A2A message transport the operator does not serve: an agent is asked by
creating an AgentRun (or delegating, or sending a signal), which the description of `url` says.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from aiohttp import web

from agency_operator.triggers.signals.kube import KubeTokenReviewer
from agency_operator.triggers.signals.ports import Caller, KubernetesUnavailable
from agency_runtime.api.agent import Agent
from agency_runtime.api.meta import API_VERSION, GROUP, JsonObject

log = logging.getLogger(__name__)

CARD_PATH = "/namespaces/{namespace}/agents/{name}/.well-known/agent-card.json"
A2A_PROTOCOL_VERSION = "0.3.0"


def build_agent_card(agent: Agent, advertised: list[str], base_url: str, audience: str) -> JsonObject:
    """The card of one Agent (pure): `advertised` are the skill names in its status, `base_url` where the
    operator's server is reached (scheme, host and port)."""
    meta = agent.metadata
    namespace, name = meta.namespace or "", meta.name
    skills = [
        {
            "id": skill.name,
            "name": skill.name,
            "description": skill.description,
            "tags": skill.name.split("-"),
        }
        for skill in agent.spec.skills
        if skill.name in advertised
    ]
    return {
        "protocolVersion": A2A_PROTOCOL_VERSION,
        "name": name,
        "description": agent.spec.description or f"Agent {name} in namespace {namespace}",
        "url": f"{base_url}/namespaces/{namespace}/agents/{name}",
        "version": str(meta.generation or 1),
        "provider": {"organization": GROUP, "url": f"{base_url}/namespaces/{namespace}/agents/{name}"},
        "capabilities": {"streaming": False, "pushNotifications": False, "stateTransitionHistory": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": skills,
        "securitySchemes": {
            "kubernetes": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": f"A Kubernetes service account token for the audience {audience}",
            }
        },
        "security": [{"kubernetes": []}],
    }


def _refusal(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


async def _may_get_agent(client: httpx.AsyncClient, caller: Caller, namespace: str, name: str) -> bool:
    spec: dict[str, Any] = {
        "user": caller.username,
        "groups": list(caller.groups),
        "extra": {k: list(v) for k, v in caller.extra.items()},
        "resourceAttributes": {
            "namespace": namespace,
            "verb": "get",
            "group": GROUP,
            "resource": "agents",
            "name": name,
        },
    }
    if caller.uid:
        spec["uid"] = caller.uid
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    try:
        response = await client.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
    except httpx.TransportError as error:
        raise KubernetesUnavailable(str(error)) from error
    if response.status_code >= 500:
        raise KubernetesUnavailable(f"SubjectAccessReview: HTTP {response.status_code}")
    response.raise_for_status()
    return bool((response.json().get("status") or {}).get("allowed"))


def add_routes(app: web.Application, client: httpx.AsyncClient, audience: str) -> None:
    """Serve agent cards on `app`, talking to the API server through `client` (as the operator)."""
    tokens = KubeTokenReviewer(client, audience)

    async def card(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": f'Bearer realm="{audience}"'}
        if scheme.lower() != "bearer" or not token.strip():
            return _refusal(
                401, "unauthenticated", "send a Kubernetes token as 'Authorization: Bearer'", challenge
            )
        try:
            caller = await tokens.authenticate(token.strip())
            if caller is None:
                return _refusal(401, "unauthenticated", f"the token is not valid for {audience}", challenge)
            if not await _may_get_agent(client, caller, namespace, name):
                return _refusal(
                    403, "forbidden", f"{caller.username} may not get agents.{GROUP} {name} in {namespace}"
                )
            response = await client.get(f"/apis/{API_VERSION}/namespaces/{namespace}/agents/{name}")
        except (KubernetesUnavailable, httpx.TransportError) as error:
            log.warning("agent card: the API server could not answer: %s", error)
            return _refusal(503, "unavailable", "the Kubernetes API could not be reached; retry later")
        if response.status_code == 404:
            return _refusal(404, "not_found", f"no agent {name} in namespace {namespace}")
        response.raise_for_status()
        body = response.json()
        advertised = list((body.get("status") or {}).get("skills") or [])
        base = f"{request.scheme}://{request.host}"
        return web.json_response(build_agent_card(Agent.from_k8s(body), advertised, base, audience))

    app.router.add_get(CARD_PATH, card)
