"""Building blocks for runtime tests: agents pointed at the scripted LLM, and runs over a file journal."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from agency_runtime.api.agent import AgentSpec
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.api.run import Approval, Decision
from agency_runtime.contract import Budget
from agency_runtime.journal import Journal, JsonDict, Kind, Record
from agency_runtime.journal_file import FileJournal
from agency_runtime.llm import ModelClient
from agency_runtime.loop import RunContext, RunResult, run_agent
from agency_runtime.process import content_capture
from agency_runtime.tools.memory import FileMemory
from agency_runtime.tools.registry import build_registry
from agency_runtime.tracing import Telemetry, TraceSettings


def agent(base_url: str, conversation: str, **spec: Any) -> AgentSpec:
    """An Agent spec whose model is the scripted conversation `conversation` (camelCase extra fields)."""
    model = {"name": f"openai/{conversation}", "apiBase": base_url, **spec.pop("model", {})}
    return AgentSpec.model_validate({"instructions": "You are a test agent.", "model": model, **spec})


def http_tool(*hosts: str, name: str = "http_request", risk: str | None = None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name, "builtin": "http", "settings": {"allowedHosts": ",".join(hosts)}}
    if risk is not None:
        tool["risk"] = risk
    return tool


def policy(**spec: Any) -> AgentPolicySpec:
    return AgentPolicySpec.model_validate(spec)


def act_on_everything(**spec: Any) -> AgentPolicySpec:
    """A policy that lets every risk class act (tests of other rules start from it)."""
    autonomy = {"readOnly": {"level": "act"}, "idempotent": {"level": "act"}, "destructive": {"level": "act"}}
    return policy(autonomy=autonomy, **spec)


class RecordingSleep:
    """Sleeps for real and remembers how long it was asked to (to check backoff without faking time)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


class Crash(BaseException):
    """Stands in for the process dying: raised by CrashingJournal right after a chosen record is durable."""


class CrashingJournal(FileJournal):
    """A file journal that 'dies' at the record matching `kind` and `key`: right after it is durable, or
    (`before=True`) just before it is written, e.g. after a tool call was made but before its result."""

    def __init__(self, directory: Path, kind: Kind, key: str, *, before: bool = False) -> None:
        super().__init__(directory)
        self._crash_at = (kind, key)
        self._before = before

    def append(self, kind: Kind, key: str, data: JsonDict) -> Record:
        if self._before and (kind, key) == self._crash_at:
            raise Crash(f"crashed before {kind} {key}")
        record = super().append(kind, key, data)
        if (kind, key) == self._crash_at:
            raise Crash(f"crashed after {kind} {key}")
        return record


@dataclass
class Runner:
    """Runs agents in this process the way `python -m agency_runtime` does, over a journal in `root`."""

    root: Path
    api_key: str = "sk-test-secret-key"
    sleep: RecordingSleep = field(default_factory=RecordingSleep)
    span_exporter: SpanExporter | None = None
    metric_reader: MetricReader | None = None

    def context(
        self,
        spec: AgentSpec,
        *,
        input: str = "do the task",
        policy: AgentPolicySpec | None = None,
        budget: Budget | None = None,
        run_id: str = "run-1",
        journal: Journal | None = None,
        traceparent: str | None = None,
        clock: Callable[[], float] = time.time,
        approvals: dict[str, Approval] | None = None,
    ) -> RunContext:
        from agency_runtime.runfile import RunFile

        memory = FileMemory(self.root / "memory" / "agent.json")
        return RunContext(
            run_id=run_id,
            agent_name="tester",
            run=RunFile(agent=spec, policy=policy, input=input),
            budget=budget or Budget(),
            journal=journal or FileJournal(self.root / "journal" / run_id),
            model=ModelClient(spec.model, self.api_key, sleep=self.sleep),
            tools=build_registry(spec, policy, memory),
            telemetry=Telemetry(
                TraceSettings(capture_content=content_capture(policy)),
                span_exporter=self.span_exporter,
                metric_reader=self.metric_reader,
            ),
            memory=memory,
            traceparent=traceparent,
            clock=clock,
            approvals=approvals or {},
        )

    def run(self, spec: AgentSpec, **kwargs: Any) -> RunResult:
        ctx = self.context(spec, **kwargs)
        try:
            return run_agent(ctx)
        finally:
            ctx.journal.close()
            ctx.telemetry.shutdown()

    def journal_records(self, run_id: str = "run-1") -> list[Record]:
        journal = FileJournal(self.root / "journal" / run_id)
        try:
            return journal.open()
        finally:
            journal.close()


def tool_messages(body: JsonDict) -> list[str]:
    """The contents of the tool results a model request carried, in order."""
    return [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def decision(proposal_id: str, decided: str, by: str, reason: str | None = None) -> dict[str, Approval]:
    """spec.approvals as the runtime reads it: one decision (`Approved` or `Rejected`) on `proposal_id`."""
    approval = Approval(
        proposal_id=proposal_id, decision=Decision(decided), by=by, reason=reason, at=datetime.now(UTC)
    )
    return {proposal_id: approval}
