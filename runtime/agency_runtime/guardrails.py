"""Guardrails: checks the runtime itself makes after a tool call changed something, not the model.

A guardrail is an HTTP URL that answers 2xx while the system is healthy. It is declared by whoever
writes the Agent, never chosen by the model (a check the model could skip would guard nothing):

- on a built-in tool, the setting `guardrailUrl`: checked after every call of that tool that acted and
  was not read-only;
- on the Agent spec, the `guardrails` list (`[{name, url, tools}]`): checked after every acting,
  non-read-only call (of the listed tools, when `tools` is set).

The URL must pass the same allow-list as the tool (its `allowedHosts` and the policy's egress). A check
that cannot be made (refused host, timeout, connection error) fails: guardrails fail closed. Every check
is journaled under `<call key>/guardrail`, so a new process reads the verdict back and a failed check
leads to the same rollback (see `rollback`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from agency_runtime.api.agent import AgentSpec
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.journal import Journal, JsonDict, Kind, Replay
from agency_runtime.sidecall import step_span
from agency_runtime.tools.base import ToolError
from agency_runtime.tools.http import check_destination
from agency_runtime.tracing import Telemetry

SETTING = "guardrailUrl"
TIMEOUT_SECONDS = 10.0
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Guardrail:
    """One check: `url` must answer 2xx after a changing call of one of `tools` (None: of any tool)."""

    name: str
    url: str
    tools: frozenset[str] | None = None
    allowed_hosts: tuple[str, ...] | None = None

    def applies_to(self, tool: str) -> bool:
        return self.tools is None or tool in self.tools


@dataclass(frozen=True)
class Check:
    """The verdict of the guardrails after one call: passed, or which one failed and why."""

    passed: bool
    guardrail: str = ""
    detail: str = ""

    def to_json(self) -> JsonDict:
        return {"passed": self.passed, "guardrail": self.guardrail, "detail": self.detail}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Check:
        return cls(bool(raw.get("passed")), str(raw.get("guardrail", "")), str(raw.get("detail", "")))


def _hosts(settings: Mapping[str, str] | None) -> tuple[str, ...] | None:
    raw = (settings or {}).get("allowedHosts")
    return None if raw is None else tuple(h.strip() for h in raw.split(",") if h.strip())


def guardrails_of(agent: AgentSpec) -> list[Guardrail]:
    """The guardrails an Agent declares: tool settings, then the spec's `guardrails`."""
    found = [
        Guardrail(
            f"{tool.name}.{SETTING}", tool.settings[SETTING], frozenset({tool.name}), _hosts(tool.settings)
        )
        for tool in agent.tools
        if tool.settings and tool.settings.get(SETTING)
    ]
    found.extend(Guardrail(g.name, g.url, frozenset(g.tools) if g.tools else None) for g in agent.guardrails)
    return found


def probe(guardrail: Guardrail, policy: AgentPolicySpec | None) -> str | None:
    """None when the guardrail holds, else what failed."""
    try:
        check_destination(
            guardrail.url, None if guardrail.allowed_hosts is None else list(guardrail.allowed_hosts), policy
        )
    except ToolError as err:
        return f"cannot check {guardrail.url}: {err}"
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = client.get(guardrail.url)
    except httpx.HTTPError as err:
        return f"GET {guardrail.url} failed: {type(err).__name__}: {err}"[:MAX_DETAIL_CHARS]
    if 200 <= response.status_code < 300:
        return None
    return f"GET {guardrail.url} answered HTTP {response.status_code}: {response.text}"[:MAX_DETAIL_CHARS]


@dataclass
class Guards:
    """Runs the guardrails after acting calls, journaled, and replays earlier verdicts."""

    guardrails: Sequence[Guardrail]
    policy: AgentPolicySpec | None
    journal: Journal
    replay: Replay
    telemetry: Telemetry

    def after_call(self, key: str, tool: str) -> Check:
        """The verdict for the call `key` of `tool`, which acted and may have changed something."""
        done = self.replay.result(f"{key}/guardrail")
        if done is not None:
            return Check.from_json(done)
        applicable = [g for g in self.guardrails if g.applies_to(tool)]
        if not applicable:
            return Check(True)
        check = Check(True)
        with step_span(self.telemetry, "guardrail", **{"agency.guardrail.call": key}) as span:
            for guardrail in applicable:
                failure = probe(guardrail, self.policy)
                if failure is not None:
                    check = Check(False, guardrail.name, failure)
                    break
            span.set_attribute("agency.guardrail.passed", check.passed)
        self.journal.append(Kind.RESULT, f"{key}/guardrail", check.to_json())
        return check
