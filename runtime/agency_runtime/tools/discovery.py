"""The built-in `find_agents` tool: which Agents in this namespace offer a skill, so the model can delegate.

It lists Agents with the run's own token, so RBAC decides what a run may discover (a refusal is a tool
result the model reads). An Agent matches when one of its `spec.skills` is named like the query or its
name and description contain every word of the query; an empty query lists every Agent with skills.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from agency_runtime.api.common import Risk
from agency_runtime.api.meta import API_VERSION
from agency_runtime.kube import KubeApiError, KubeClient, resource_path
from agency_runtime.tools.base import JsonDict, Tool, ToolContext, ToolOutcome

MAX_AGENTS = 20
MAX_DESCRIPTION = 400
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lowercase words of letters and digits (`route-planning` is `route` and `planning`)."""
    return _WORD.findall(text.lower())


def skill_matches(query: str, skill: JsonDict) -> bool:
    """True when the skill is named `query` or its name and description hold every word of it."""
    wanted = words(query)
    if not wanted:
        return True
    name = str(skill.get("name", ""))
    if name.lower() == query.strip().lower():
        return True
    have = set(words(f"{name} {skill.get('description', '')}"))
    return all(any(h.startswith(w) for h in have) for w in wanted)


def _card(agent: JsonDict, skills: Iterable[JsonDict]) -> JsonDict:
    spec = agent.get("spec") or {}
    return {
        "name": (agent.get("metadata") or {}).get("name"),
        "description": str(spec.get("description") or "")[:MAX_DESCRIPTION],
        "skills": [
            {"name": s.get("name"), "description": str(s.get("description") or "")[:MAX_DESCRIPTION]}
            for s in skills
        ],
    }


def matching_agents(agents: Iterable[JsonDict], query: str, exclude: str | None = None) -> list[JsonDict]:
    """Cards (`name`, `description`, `skills`) of the Agents with a skill matching `query`, by name; only
    the matching skills are shown."""
    found = []
    for agent in agents:
        name = (agent.get("metadata") or {}).get("name")
        if name == exclude:
            continue
        skills = [s for s in (agent.get("spec") or {}).get("skills") or () if isinstance(s, dict)]
        hits = [s for s in skills if skill_matches(query, s)]
        if hits:
            found.append(_card(agent, hits))
    return sorted(found, key=lambda card: str(card["name"]))


class FindAgentsTool(Tool):
    """Agents in the run's namespace by skill, as far as the run may list them."""

    def __init__(
        self,
        name: str,
        description: str | None,
        client: KubeClient,
        namespace: str,
        *,
        own_agent: str | None = None,
        risk: Risk | None = None,
    ) -> None:
        self.name = name
        self.description = description or (
            "Find other agents in this namespace by skill: give a skill name or a few words of what you "
            "need done; returns each matching agent's name, description and skills, to delegate to."
        )
        self.client = client
        self.namespace = namespace
        self.own_agent = own_agent
        self._risk = risk or Risk.READ_ONLY

    @property
    def parameters(self) -> JsonDict:
        return {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "A skill name or words of what you need, e.g. 'route planning'.",
                }
            },
            "required": ["query"],
            "additionalProperties": False,
        }

    def risk(self, arguments: JsonDict) -> Risk:
        return self._risk

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        query = str(arguments.get("query") or "")
        path = resource_path(API_VERSION, "agents", self.namespace)
        try:
            listed = self.client.get(path)
        except KubeApiError as err:
            return ToolOutcome.error(
                f"error: listing agents in namespace {self.namespace} was refused: HTTP {err.status} "
                f"{err.reason}: {err.message}",
                status=err.status,
            )
        items: list[Any] = listed.get("items") or []
        cards = matching_agents((i for i in items if isinstance(i, dict)), query, self.own_agent)
        if not cards:
            return ToolOutcome(f"no agent in namespace {self.namespace} has a skill matching {query!r}")
        shown = cards[:MAX_AGENTS]
        more = (
            f"\n({len(cards) - len(shown)} more not shown; ask more precisely)"
            if len(cards) > len(shown)
            else ""
        )
        return ToolOutcome(json.dumps(shown, indent=1) + more, data={"agents": [c["name"] for c in cards]})
