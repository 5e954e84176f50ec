"""The agentic loop: plan, act, observe, reflect, until the model answers or a limit stops the run.

Each step is one model call (journaled: intent, then the full answer) followed by the tool calls it asked
for (each gated by the policy and journaled). The system prompt carries the agent's instructions, its
current plan (revised by the model with `update_plan`) and the lessons kept in memory; the user message is
the run's input. The run ends when the model answers without calling a tool (or calls `finish`), when a
budget limit stops it, or when a call needs approval (also a destructive call whose outcome an earlier
process did not record: it is not redone without an approver's say).

Everything a step decides is in the journal, so a new process replays it: answered model calls and
finished tool calls are read back, never made again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from agency_runtime.api.common import Risk, RunPhase
from agency_runtime.api.run import Approval
from agency_runtime.approvals import Outcome, Verdict, judge
from agency_runtime.budget import BudgetExceeded, Meter, Prices, Usage
from agency_runtime.compaction import CompactionSettings, Compactor
from agency_runtime.conclusion import conclude
from agency_runtime.contract import Budget
from agency_runtime.guardrails import Guards, guardrails_of
from agency_runtime.journal import Journal, Kind, Replay
from agency_runtime.judge import JudgeSettings
from agency_runtime.llm import (
    Answer,
    Message,
    ModelClient,
    ModelError,
    ToolCall,
    count_prompt_tokens,
    prices_for,
)
from agency_runtime.reflection import recent_lessons
from agency_runtime.rollback import Acted, acted_in, roll_back
from agency_runtime.runfile import RunFile
from agency_runtime.sidecall import SideCalls
from agency_runtime.tools.approval import RequestApprovalTool
from agency_runtime.tools.base import (
    CHILD_USAGE,
    JsonDict,
    Tool,
    ToolContext,
    ToolError,
    ToolOutcome,
    parse_arguments,
)
from agency_runtime.tools.gate import Decision, GateResult, decide
from agency_runtime.tools.memory import MemoryStore
from agency_runtime.tools.registry import ToolRegistry
from agency_runtime.tracing import Telemetry, trace_id_of, traceparent_of

NO_PLAN = (
    "No plan yet. For a task of more than one step, write one with update_plan first, and revise it as "
    "you learn."
)


class Reason:
    """Machine-readable reasons a run ends (CamelCase, as in Kubernetes conditions)."""

    COMPLETED = "Completed"
    BUDGET_EXCEEDED = "BudgetExceeded"
    APPROVAL_REQUIRED = "ApprovalRequired"
    MODEL_FAILED = "ModelFailed"


@dataclass
class RunResult:
    """How a run ended; what the status reporter publishes."""

    phase: RunPhase
    reason: str
    message: str
    result: str | None = None
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    trace_id: str | None = None
    plan: str | None = None
    proposal: JsonDict | None = None
    notifications: list[JsonDict] = field(default_factory=list)
    limit: str | None = None
    reflection: JsonDict | None = None
    """What reflection did at the end: the lesson stored for later runs, or why there is none."""
    judge: JsonDict | None = None
    """The judge's verdict (`score` 0..1 and `reason`, or `scored: false` and why), when a judge is set."""

    def to_json(self) -> JsonDict:
        out: JsonDict = {
            "phase": self.phase.value,
            "reason": self.reason,
            "message": self.message,
            "result": self.result,
            "steps": self.steps,
            "usage": self.usage.to_json(),
            "traceId": self.trace_id,
            "plan": self.plan,
        }
        if self.proposal is not None:
            out["proposal"] = self.proposal
        if self.notifications:
            out["notifications"] = self.notifications
        if self.limit is not None:
            out["limit"] = self.limit
        if self.reflection is not None:
            out["reflection"] = self.reflection
        if self.judge is not None:
            out["judge"] = self.judge
        return out

    @classmethod
    def from_json(cls, raw: JsonDict) -> RunResult:
        usage = raw.get("usage") or {}
        return cls(
            phase=RunPhase(raw["phase"]),
            reason=str(raw["reason"]),
            message=str(raw.get("message", "")),
            result=raw.get("result"),
            steps=int(raw.get("steps", 0)),
            usage=Usage(
                int(usage.get("inputTokens", 0)),
                int(usage.get("outputTokens", 0)),
                float(usage.get("costUSD", 0.0)),
            ),
            trace_id=raw.get("traceId"),
            plan=raw.get("plan"),
            proposal=raw.get("proposal"),
            notifications=list(raw.get("notifications") or ()),
            limit=raw.get("limit"),
            reflection=raw.get("reflection"),
            judge=raw.get("judge"),
        )


@dataclass(frozen=True)
class Progress:
    """Where a running run is after a step: for the status summary (step count, usage, the living plan)."""

    steps: int
    usage: Usage
    plan: str | None
    trace_id: str | None = None


@dataclass
class RunContext:
    """Everything one run needs, assembled by `__main__` (or a test)."""

    run_id: str
    agent_name: str
    run: RunFile
    budget: Budget
    journal: Journal
    model: ModelClient
    tools: ToolRegistry
    telemetry: Telemetry
    memory: MemoryStore | None = None
    traceparent: str | None = None
    clock: Callable[[], float] = time.time
    on_progress: Callable[[Progress], None] | None = None
    """Called after every step (also replayed ones); a status reporter publishes it."""
    compaction: CompactionSettings = field(default_factory=CompactionSettings.from_environ)
    """When older steps are summarized to keep the conversation inside the model's context window (the
    policy's `compactAtTokens` applies when these set no token threshold)."""
    judge: JudgeSettings | None = None
    """The judge of finished runs; None: the Agent spec's `judge`, if any."""
    approvals: dict[str, Approval] = field(default_factory=dict)
    """Decisions recorded in the AgentRun's spec.approvals, by proposal id (read when the process starts)."""


def system_prompt(instructions: str, plan: str | None, lessons: list[str]) -> str:
    """Instructions, then the living plan, then what earlier runs learned."""
    parts = [instructions.strip(), "## Your current plan\n" + (plan or NO_PLAN)]
    if lessons:
        parts.append("## Lessons from earlier runs\n" + "\n".join(f"- {lesson}" for lesson in lessons))
    return "\n\n".join(parts)


def run_agent(ctx: RunContext) -> RunResult:
    """Run (or continue) the run journaled in `ctx.journal`.

    Fenced propagates: a newer process owns the run."""
    replay = Replay.of(ctx.journal.open())
    if replay.finished is not None:
        return RunResult.from_json(replay.finished.data)
    # A resumed run without a caller's trace continues the first process's trace, under its run span.
    first = replay.started
    parent = ctx.traceparent or (
        str(first.data["traceparent"]) if first and first.data.get("traceparent") else None
    )
    with ctx.telemetry.run_span(ctx.agent_name, ctx.run_id, parent) as span:
        if first is None:
            lessons = recent_lessons(ctx.memory) if ctx.memory is not None else []
            started = ctx.journal.append(
                Kind.STARTED,
                "run",
                {
                    "startedAt": ctx.clock(),
                    "lessons": lessons,
                    "skippedTools": ctx.tools.skipped,
                    "traceparent": traceparent_of(span),
                },
            )
        else:
            started = first
            ctx.journal.append(
                Kind.EVENT, "resumed", {"epoch": ctx.journal.epoch, "records": len(replay.records)}
            )
        meter = Meter(ctx.budget, float(started.data["startedAt"]), clock=ctx.clock)
        loop = _Loop(ctx, replay, meter, list(started.data.get("lessons") or ()))
        result = loop.run()
        if result.phase.finished:
            conclude(ctx, loop.calls, loop.prices, loop.messages, result, span)
        result.trace_id = trace_id_of(span)
        span.set_attribute("gen_ai.usage.input_tokens", result.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", result.usage.output_tokens)
        span.set_attribute("agency.run.phase", result.phase.value)
        if result.phase is RunPhase.FAILED:
            span.set_status(Status(StatusCode.ERROR, result.reason))
    if result.phase.finished:
        ctx.journal.append(Kind.FINISHED, "run", result.to_json())
    return result


class _Stop(Exception):
    def __init__(self, result: RunResult) -> None:
        super().__init__(result.message)
        self.result = result


class _Loop:
    def __init__(self, ctx: RunContext, replay: Replay, meter: Meter, lessons: list[str]) -> None:
        self.ctx = ctx
        self.replay = replay
        self.meter = meter
        self.lessons = lessons
        self.plan: str | None = None
        self.notifications: list[JsonDict] = []
        self.messages: list[Message] = [{"role": "user", "content": ctx.run.input or "(no input)"}]
        self.prices: Prices = prices_for(ctx.run.agent.model)
        self.calls = SideCalls(ctx.journal, replay, meter, ctx.telemetry, ctx.clock)
        compaction = ctx.compaction.with_policy(ctx.run.policy)
        self.compactor = Compactor(compaction, self.calls, ctx.model, self.prices)
        self.acted: list[Acted] = acted_in(replay, ctx.tools)
        self.guards = Guards(guardrails_of(ctx.run.agent), ctx.run.policy, ctx.journal, replay, ctx.telemetry)

    def _end(self, phase: RunPhase, reason: str, message: str, **extra: Any) -> RunResult:
        return RunResult(
            phase=phase,
            reason=reason,
            message=message,
            steps=self.meter.steps,
            usage=self.meter.usage,
            plan=self.plan,
            notifications=self.notifications,
            **extra,
        )

    def run(self) -> RunResult:
        try:
            step = 0
            while True:
                step += 1
                answer = self._model_step(step)
                self.messages.append(answer.assistant_message())
                if not answer.tool_calls:
                    return self._end(
                        RunPhase.SUCCEEDED,
                        Reason.COMPLETED,
                        f"the model answered after {step} step(s)",
                        result=answer.content or "",
                    )
                for index, call in enumerate(answer.tool_calls):
                    outcome = self._tool_step(step, index, call)
                    self._charge_child(outcome)
                    self._guard(f"step-{step}/tool-{index}", call.name)
                    self.messages.append(
                        {"role": "tool", "tool_call_id": call.id, "content": outcome.content}
                    )
                    plan = outcome.data.get("plan")
                    if isinstance(plan, str):
                        self.plan = plan
                    if outcome.final:
                        return self._end(
                            RunPhase.SUCCEEDED,
                            Reason.COMPLETED,
                            f"the model finished after {step} step(s)",
                            result=outcome.content,
                        )
                if self.ctx.on_progress is not None:
                    self.ctx.on_progress(
                        Progress(
                            self.meter.steps,
                            self.meter.usage,
                            self.plan,
                            trace_id_of(trace.get_current_span()),
                        )
                    )
        except _Stop as stop:
            return stop.result
        except BudgetExceeded as exceeded:
            return self._end(
                RunPhase.BUDGET_EXCEEDED, Reason.BUDGET_EXCEEDED, exceeded.message, limit=exceeded.limit
            )

    # --- model --------------------------------------------------------------------------------------------

    def _model_step(self, step: int) -> Answer:
        key = f"step-{step}/model"
        system = {"role": "system", "content": self._system()}
        self.messages = self.compactor.before_step(step, system, self.messages, self.ctx.tools.schemas())
        done = self.replay.result(key)
        answer = Answer.from_json(done) if done is not None else self._ask_model(key)
        self.meter.record_call(answer.input_tokens, answer.output_tokens, answer.cost_usd)
        return answer

    def _system(self) -> str:
        return system_prompt(self.ctx.run.agent.instructions, self.plan, self.lessons)

    def _ask_model(self, key: str) -> Answer:
        ctx = self.ctx
        spec = ctx.run.agent.model
        full = [{"role": "system", "content": self._system()}, *self.messages]
        tools = ctx.tools.schemas()
        estimate = count_prompt_tokens(spec.name, full, tools)
        allowance = self.meter.allow_call(estimate, spec.parameters.max_output_tokens, self.prices)
        ctx.journal.append(
            Kind.INTENT,
            key,
            {"estimatedInputTokens": estimate, "maxOutputTokens": allowance.max_output_tokens},
        )
        provider = spec.name.split("/", 1)[0] if "/" in spec.name else "openai"
        telemetry = ctx.telemetry
        started = time.monotonic()
        with telemetry.chat_span(spec.name, provider, allowance.max_output_tokens) as span:
            try:
                answer = ctx.model.complete(
                    full, tools, max_output_tokens=allowance.max_output_tokens, deadline=self.meter.deadline()
                )
            except (ModelError, BudgetExceeded) as err:
                telemetry.record_error(span, err)
                telemetry.record_chat(
                    span,
                    provider=provider,
                    request_model=span_model(spec.name),
                    response_model=span_model(spec.name),
                    response_id=None,
                    input_tokens=0,
                    output_tokens=0,
                    finish_reason=None,
                    duration=time.monotonic() - started,
                    error_type=type(err).__qualname__,
                )
                if isinstance(err, BudgetExceeded):
                    raise
                raise _Stop(self._end(RunPhase.FAILED, Reason.MODEL_FAILED, str(err))) from None
            telemetry.record_chat(
                span,
                provider=answer.provider,
                request_model=span_model(spec.name),
                response_model=answer.model,
                response_id=answer.response_id,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                finish_reason=answer.finish_reason,
                duration=time.monotonic() - started,
            )
            telemetry.record_messages(span, full, answer.assistant_message())
        ctx.journal.append(Kind.RESULT, key, answer.to_json())
        return answer

    # --- tools --------------------------------------------------------------------------------------------

    def _corrective(self, key: str, call: ToolCall, message: str) -> ToolOutcome:
        outcome = ToolOutcome.error(message)
        self.ctx.journal.append(
            Kind.RESULT, key, {"tool": call.name, "outcome": outcome.to_json(), "corrective": True}
        )
        return outcome

    def _tool_step(self, step: int, index: int, call: ToolCall) -> ToolOutcome:
        key = f"step-{step}/tool-{index}"
        done = self.replay.result(key)
        if done is not None:
            return ToolOutcome.from_json(done["outcome"])
        tool = self.ctx.tools.get(call.name)
        if tool is None:
            names = ", ".join(self.ctx.tools.names())
            return self._corrective(
                key, call, f"error: there is no tool named {call.name!r}. Available tools: {names}."
            )
        try:
            arguments = parse_arguments(call.arguments, tool.parameters)
        except ToolError as err:
            return self._corrective(key, call, f"error: tool {call.name!r} was not called: {err}")
        risk = tool.risk(arguments)
        gate = (
            GateResult(Decision.ACT, risk, "runtime tool")
            if tool.internal
            else decide(call.name, risk, self.ctx.run.policy, can_undo=tool.can_undo(arguments))
        )
        if gate.decision is Decision.DENY:
            outcome = ToolOutcome.error(
                f"refused: {gate.reason}. Do not call it again; find another way or explain."
            )
            self.ctx.journal.append(
                Kind.RESULT,
                key,
                {"tool": call.name, "outcome": outcome.to_json(), "gate": gate.decision.value},
            )
            return outcome
        if isinstance(tool, RequestApprovalTool):
            return self._request_approval(key, call, arguments, gate.risk)
        if gate.decision is Decision.NOTIFY:
            return self._notify(key, call, gate)
        if gate.decision is Decision.PROPOSE:
            refused = self._propose(key, call, gate)
            if refused is not None:
                return refused
        return self._act(key, call, tool, arguments, gate.risk)

    def _charge_child(self, outcome: ToolOutcome) -> None:
        """A delegated child run's usage counts against this run's budget (also when replayed)."""
        used = outcome.data.get(CHILD_USAGE)
        if isinstance(used, dict):
            self.meter.charge(
                Usage(
                    int(used.get("inputTokens", 0)),
                    int(used.get("outputTokens", 0)),
                    float(used.get("costUSD", 0.0)),
                )
            )

    def _notify(self, key: str, call: ToolCall, gate: GateResult) -> ToolOutcome:
        notification = {
            "tool": call.name,
            "arguments": call.arguments,
            "risk": gate.risk.value,
            "reason": gate.reason,
        }
        self.ctx.journal.append(Kind.EVENT, f"{key}/notify", notification)
        self.notifications.append(notification)
        outcome = ToolOutcome(
            f"not executed: {gate.reason}. The approvers have been told what you wanted to do; "
            "continue without it."
        )
        self.ctx.journal.append(
            Kind.RESULT, key, {"tool": call.name, "outcome": outcome.to_json(), "gate": "notify"}
        )
        return outcome

    def _verdict(self, key: str, proposal: JsonDict) -> Verdict:
        """The decision on a proposal: journaled by an earlier process, else judged now from spec.approvals
        (and journaled, with the approver, and added to the run span)."""
        for record in self.replay.records:
            if record.kind is Kind.EVENT and record.key == f"{key}/decision":
                return Verdict.from_json(record.data)
        verdict = judge(proposal, self.ctx.approvals, self.ctx.run.policy, self.ctx.clock())
        for notice in verdict.ignored:
            self.ctx.journal.append(
                Kind.EVENT,
                f"{key}/decision-ignored",
                {"proposalId": proposal["proposalId"], "notice": notice},
            )
        if verdict.outcome is Outcome.WAITING:
            return verdict
        self.ctx.journal.append(
            Kind.EVENT, f"{key}/decision", {"proposalId": proposal["proposalId"], **verdict.to_json()}
        )
        attributes = {
            "agency.proposal.id": str(proposal["proposalId"]),
            "agency.proposal.tool": str(proposal.get("tool", "")),
            "agency.approval.decision": verdict.outcome.value,
        }
        if verdict.by:
            attributes["agency.approval.by"] = verdict.by
        trace.get_current_span().add_event("agency.approval", attributes)
        return verdict

    def _propose(self, key: str, call: ToolCall, gate: GateResult) -> ToolOutcome | None:
        """Hold the run until an approver decides: record the proposal (once) and stop WaitingForApproval.

        A process started after a decision goes on: None when the call was approved (the caller makes
        it), the refusal the model reads when it was rejected or the proposal expired."""
        verdict = self._held(key, call.name, call.arguments, gate.risk, gate.reason, callKey=key)
        if verdict.outcome is Outcome.APPROVED:
            return None
        outcome = ToolOutcome.error(verdict.told_to_model())
        self.ctx.journal.append(
            Kind.RESULT,
            key,
            {"tool": call.name, "outcome": outcome.to_json(), "gate": verdict.outcome.value.lower()},
        )
        return outcome

    def _request_approval(self, key: str, call: ToolCall, arguments: JsonDict, risk: Risk) -> ToolOutcome:
        """`request_approval`: the model asks the approvers, in words, whether it may go on. It is always a
        proposal, whatever the autonomy (it is the approval); the decision is the tool's result, and an
        expired request counts as rejected."""
        summary = str(arguments.get("summary", "")).strip()
        details = str(arguments.get("details") or "").strip()
        reason = f"the agent asks for approval: {summary}" + (f"\n\n{details}" if details else "")
        verdict = self._held(key, call.name, call.arguments, risk, reason, callKey=key)
        because = verdict.reason.strip() if verdict.reason else "(no reason given)"
        if verdict.outcome is Outcome.APPROVED:
            content = f"approved by {verdict.by}: {because}"
        elif verdict.outcome is Outcome.REJECTED:
            content = f"rejected by {verdict.by}: {because}"
        else:
            content = f"rejected: {because}"
        outcome = ToolOutcome(content, data={"decision": verdict.outcome.value, "by": verdict.by})
        self.ctx.journal.append(
            Kind.RESULT,
            key,
            {"tool": call.name, "outcome": outcome.to_json(), "gate": f"request-{verdict.outcome.lower()}"},
        )
        return outcome

    def _escalate_unknown(self, key: str, call: ToolCall, risk: Risk) -> ToolOutcome | None:
        """A destructive call an earlier process started but did not record the end of: it may or may not
        have taken effect, so it is not redone on the runtime's own authority but proposed to the approvers.

        Approved: None (the caller makes the call again, with the same idempotency key). Rejected or
        expired: the model is told it was not repeated and that its effect is unknown. Each lost attempt
        gets its own proposal (keyed by how many times the call was started), so a decision is asked for
        once and, once journaled, never again."""
        attempt = sum(1 for r in self.replay.records if r.kind is Kind.INTENT and r.key == key)
        ask = f"{key}/outcome-unknown-{attempt}"
        reason = (
            f"the process running this destructive call of {call.name} stopped before recording its outcome, "
            "so it may or may not have taken effect. Approve: make the call again. Reject: do not repeat it "
            "(the agent is told it was not repeated and that its effect is unknown)."
        )
        verdict = self._held(ask, call.name, call.arguments, risk, reason, callKey=key, outcomeUnknown=True)
        if verdict.outcome is Outcome.APPROVED:
            return None
        because = f": {verdict.reason.rstrip('.')}" if verdict.reason else " (no reason given)"
        why = (
            verdict.reason.rstrip(".")
            if verdict.outcome is Outcome.EXPIRED and verdict.reason
            else f"making it again was rejected by {verdict.by}{because}"
        )
        outcome = ToolOutcome.error(
            f"not repeated: this call was started by an earlier process that stopped before recording its "
            f"outcome, so whether it took effect is unknown; {why}. Check its effect before relying on it, "
            "and do not call it again unless you know it did not happen."
        )
        self.ctx.journal.append(
            Kind.RESULT,
            key,
            {
                "tool": call.name,
                "outcome": outcome.to_json(),
                "gate": f"outcome-unknown-{verdict.outcome.lower()}",
            },
        )
        return outcome

    def _held(self, key: str, tool: str, arguments: str, risk: Risk, reason: str, **extra: Any) -> Verdict:
        """The decision on the proposal journaled under `key` (journaled now, once, if there is none); a
        run still waiting for it stops WaitingForApproval, showing the proposal."""
        existing = self.replay.proposals.get(key)
        if existing is not None:
            proposal = existing.data
            verdict = self._verdict(key, proposal)
            if verdict.outcome is not Outcome.WAITING:
                return verdict
        else:
            proposal = {
                "proposalId": f"p-{uuid.uuid4().hex[:12]}",
                "tool": tool,
                "arguments": arguments,
                "risk": risk.value,
                "reason": reason,
                "requestedAt": self.ctx.clock(),
                **extra,
            }
            self.ctx.journal.append(Kind.PROPOSAL, key, proposal)
        raise _Stop(
            self._end(
                RunPhase.WAITING_FOR_APPROVAL,
                Reason.APPROVAL_REQUIRED,
                f"tool call {tool} waits for approval: {reason}",
                proposal=proposal,
            )
        )

    def _act(self, key: str, call: ToolCall, tool: Tool, arguments: JsonDict, risk: Risk) -> ToolOutcome:
        ctx = self.ctx
        dangling = self.replay.dangling(key)
        if dangling is not None and risk is Risk.DESTRUCTIVE:
            refused = self._escalate_unknown(key, call, risk)
            if refused is not None:
                return refused
        idempotency_key = (
            str(dangling.data["idempotencyKey"]) if dangling is not None else f"{ctx.run_id}/{key}"
        )
        self.meter.check_wall()
        ctx.journal.append(
            Kind.INTENT,
            key,
            {
                "tool": call.name,
                "arguments": call.arguments,
                "risk": risk.value,
                "idempotencyKey": idempotency_key,
            },
        )
        with ctx.telemetry.tool_span(call.name, call.id) as span:
            context = ToolContext(
                ctx.run_id, key, idempotency_key, self.meter.deadline(), self.meter.remaining()
            )
            try:
                outcome = tool.invoke(arguments, context)
            except ToolError as err:
                outcome = ToolOutcome.error(f"error: {err}")
            except Exception as err:
                outcome = ToolOutcome.error(f"error: the tool failed: {type(err).__name__}: {err}")
            if outcome.is_error:
                span.set_attribute("error.type", "tool_error")
            ctx.telemetry.record_tool_content(span, call.arguments, outcome.content)
        compensation = tool.compensation(arguments, outcome)
        ctx.journal.append(
            Kind.RESULT,
            key,
            {
                "tool": call.name,
                "outcome": outcome.to_json(),
                "risk": risk.value,
                "compensation": compensation,
            },
        )
        if not tool.internal:
            self.acted.append(Acted(key, call.name, risk.value, compensation))
        return outcome

    def _guard(self, key: str, tool: str) -> None:
        """After a call that acted and was not read-only: its guardrails; when one fails, roll back the run's
        changes newest first and end the run (see `guardrails` and `rollback`)."""
        acted = next((a for a in self.acted if a.key == key), None)
        if acted is None or acted.risk == Risk.READ_ONLY.value:
            return
        check = self.guards.after_call(key, tool)
        if check.passed:
            return
        ctx = self.ctx
        report = roll_back(self.acted, ctx.tools, ctx.journal, self.replay, ctx.telemetry, ctx.run_id)
        raise _Stop(
            self._end(RunPhase.FAILED, report.reason, report.message(check.guardrail, check.detail, key))
        )


def span_model(model: str) -> str:
    """The model as providers name it (litellm's provider prefix removed)."""
    return model.split("/", 1)[1] if "/" in model else model


def dumps(result: RunResult) -> str:
    return json.dumps(result.to_json(), sort_keys=True)
