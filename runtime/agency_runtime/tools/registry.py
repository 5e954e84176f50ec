"""The tools of one run: built from the Agent's `tools`, its memory setting and the runtime's own tools."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from agency_runtime.api.agent import AgentSpec, BuiltinTool, MemoryScope
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.kube import KubeClient, RunObject
from agency_runtime.tools.approval import RequestApprovalTool
from agency_runtime.tools.base import JsonDict, Tool
from agency_runtime.tools.delegate import DelegateTool
from agency_runtime.tools.discovery import FindAgentsTool
from agency_runtime.tools.http import HttpEndpointTool, HttpRequestTool
from agency_runtime.tools.kubernetes import KubernetesTool
from agency_runtime.tools.memory import MemoryReadTool, MemoryStore, MemoryWriteTool
from agency_runtime.tools.plan import FinishTool, UpdatePlanTool
from agency_runtime.tools.signal import SIGNAL_URL, PublishSignalTool, SignalEndpoint

#: Built-ins that act in the cluster as the run, so they need its token.
NEEDS_KUBE = frozenset({BuiltinTool.KUBERNETES, BuiltinTool.FIND_AGENTS, BuiltinTool.DELEGATE})
WITHOUT_CLUSTER = (
    "needs the run's Kubernetes token (runs the operator starts have one; a local `agency run` does not)"
)


@dataclass
class ToolRegistry:
    """Tools by the name the model calls them; `skipped` explains tools the Agent lists but cannot use."""

    tools: dict[str, Tool] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def add(self, tool: Tool) -> None:
        if tool.name in self.tools:
            raise ValueError(f"two tools are named {tool.name!r}")
        self.tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def schemas(self) -> list[JsonDict]:
        return [tool.schema() for tool in self.tools.values()]

    def names(self) -> list[str]:
        return list(self.tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools.values())


def _allowed_hosts(settings: dict[str, str] | None) -> list[str] | None:
    raw = (settings or {}).get("allowedHosts")
    if raw is None:
        return None
    return [h.strip() for h in raw.split(",") if h.strip()]


def build_registry(
    agent: AgentSpec,
    policy: AgentPolicySpec | None,
    memory: MemoryStore | None,
    *,
    kube: KubeClient | None = None,
    namespace: str = "default",
    run: RunObject | None = None,
    signals: SignalEndpoint | None = None,
    agent_name: str | None = None,
) -> ToolRegistry:
    """The run's tools: the Agent's HTTP, built-in and agent tools, plus update_plan, finish and, unless
    memory is Disabled, memory_read and memory_write. The tools that act in the cluster (kubernetes,
    find_agents, delegate and agent tools) need the run's own client (`kube`) and, to delegate, the run
    (`run`); publish_signal needs the signal endpoint (`signals`)."""
    registry = ToolRegistry()
    for spec in agent.tools:
        if spec.http is not None:
            description = spec.description or f"Call {spec.http.method.value} {spec.http.url}"
            registry.add(HttpEndpointTool(spec.name, description, spec.http, policy=policy, risk=spec.risk))
        elif spec.builtin is BuiltinTool.HTTP:
            timeout = float((spec.settings or {}).get("timeoutSeconds", "30"))
            registry.add(
                HttpRequestTool(
                    spec.name,
                    spec.description,
                    allowed_hosts=_allowed_hosts(spec.settings),
                    policy=policy,
                    risk=spec.risk,
                    timeout_seconds=timeout,
                )
            )
        elif spec.builtin is BuiltinTool.MEMORY:
            continue  # memory tools come from spec.memory below
        elif spec.builtin is BuiltinTool.REQUEST_APPROVAL:
            registry.add(RequestApprovalTool(spec.name, spec.description))
        elif spec.builtin is BuiltinTool.PUBLISH_SIGNAL:
            if signals is None:
                registry.skipped.append(
                    f"{spec.name}: built-in publish_signal needs the signal endpoint ({SIGNAL_URL})"
                )
            else:
                registry.add(
                    PublishSignalTool(spec.name, spec.description, signals, namespace, _run_name(run))
                )
        elif spec.builtin in NEEDS_KUBE or spec.agent_ref is not None:
            what = (
                f"built-in {spec.builtin.value}" if spec.builtin is not None else "agent tools (delegation)"
            )
            if kube is None or (run is None and spec.builtin is not BuiltinTool.KUBERNETES):
                registry.skipped.append(f"{spec.name}: {what} {WITHOUT_CLUSTER}")
            elif spec.builtin is BuiltinTool.KUBERNETES:
                registry.add(KubernetesTool(spec.name, spec.description, kube, namespace, risk=spec.risk))
            elif spec.builtin is BuiltinTool.FIND_AGENTS:
                registry.add(
                    FindAgentsTool(
                        spec.name, spec.description, kube, namespace, own_agent=agent_name, risk=spec.risk
                    )
                )
            else:
                assert run is not None  # noqa: S101 - checked above
                target = spec.agent_ref.name if spec.agent_ref is not None else None
                registry.add(
                    DelegateTool(spec.name, spec.description, kube, run, agent=target, risk=spec.risk)
                )
    registry.add(UpdatePlanTool())
    registry.add(FinishTool())
    if memory is not None and agent.memory.scope is not MemoryScope.DISABLED:
        registry.add(MemoryReadTool(memory))
        registry.add(MemoryWriteTool(memory))
    return registry


def _run_name(run: RunObject | None) -> str:
    return run.name if run is not None else "local"
