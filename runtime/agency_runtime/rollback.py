"""Rollback: when a guardrail fails, undo what the run changed, newest first, each undo exactly once.

Every acting tool call journals the compensation its tool offered (`compensation`: a tool name and
arguments, or None). On rollback the compensations of the run's acting calls are run in reverse order of
the calls. Each undo is journaled like a tool call, under `rollback/<call key>`: an intent (with an
idempotency key that is the same in every process), then the result. A process that finds an undo's result
does not run it again; one that finds only its intent (the process died during the undo) retries it with
the same idempotency key, so an API that honours the key applies it once. Undos skip the policy gate (they
reverse calls the policy already let through) and the run's deadline (an undo must not be cut short by the
budget that the run may have spent).

The run then ends Failed, reason `RolledBack` when every change was undone, else `RollbackIncomplete`
(a call without a compensation, a missing tool, an undo that failed), and the message lists both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agency_runtime.api.common import Risk
from agency_runtime.journal import Journal, JsonDict, Kind, Replay
from agency_runtime.sidecall import step_span
from agency_runtime.tools.base import ToolContext, ToolError, ToolOutcome
from agency_runtime.tools.registry import ToolRegistry
from agency_runtime.tracing import Telemetry

ROLLED_BACK = "RolledBack"
ROLLBACK_INCOMPLETE = "RollbackIncomplete"
PREFIX = "rollback/"


@dataclass(frozen=True)
class Acted:
    """A tool call that was made (its result journaled), with what would undo it."""

    key: str
    tool: str
    risk: str
    compensation: JsonDict | None


def acted_in(replay: Replay, tools: ToolRegistry) -> list[Acted]:
    """The acting calls an earlier process journaled, oldest first (a RESULT that records a risk), of
    tools that reach outside the run (the run's own plan, memory and finish tools change nothing to undo)."""
    acted = []
    for record in replay.records:
        if record.kind is not Kind.RESULT or not record.key.startswith("step-") or "risk" not in record.data:
            continue
        name = str(record.data.get("tool", ""))
        tool = tools.get(name)
        if tool is not None and tool.internal:
            continue
        compensation = record.data.get("compensation")
        acted.append(
            Acted(
                record.key,
                name,
                str(record.data.get("risk", "")),
                compensation if isinstance(compensation, dict) else None,
            )
        )
    return acted


@dataclass
class Report:
    """What the rollback undid and what it could not."""

    undone: list[str] = field(default_factory=list)
    not_undone: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return ROLLED_BACK if not self.not_undone else ROLLBACK_INCOMPLETE

    def message(self, guardrail: str, detail: str, after: str) -> str:
        parts = [f"guardrail {guardrail} failed after {after} ({detail})"]
        parts.append("undone, newest first: " + ("; ".join(self.undone) if self.undone else "nothing"))
        if self.not_undone:
            parts.append("NOT undone: " + "; ".join(self.not_undone))
        return ". ".join(parts)


def _describe(call: Acted, arguments: JsonDict) -> str:
    named = " ".join(
        str(arguments[k]) for k in ("method", "url", "verb", "resource", "name") if k in arguments
    )
    shown = f"{call.tool}: {named}" if named and "url" not in arguments else named or call.tool
    return f"{shown} (undoing {call.key})"


def roll_back(
    acted: Sequence[Acted],
    tools: ToolRegistry,
    journal: Journal,
    replay: Replay,
    telemetry: Telemetry,
    run_id: str,
) -> Report:
    """Undo the changing calls in `acted`, newest first; resumable from the journal."""
    report = Report()
    with step_span(telemetry, "rollback", **{"agency.rollback.calls": len(acted)}):
        for call in reversed(acted):
            if call.risk == Risk.READ_ONLY.value:
                continue
            _undo(call, tools, journal, replay, telemetry, run_id, report)
    return report


def _undo(
    call: Acted,
    tools: ToolRegistry,
    journal: Journal,
    replay: Replay,
    telemetry: Telemetry,
    run_id: str,
    report: Report,
) -> None:
    if call.compensation is None:
        report.not_undone.append(f"{call.tool} ({call.key}): it recorded no way to undo it")
        return
    name = str(call.compensation.get("tool", ""))
    raw_arguments = call.compensation.get("arguments")
    arguments: JsonDict = raw_arguments if isinstance(raw_arguments, dict) else {}
    key = PREFIX + call.key
    described = _describe(call, arguments)
    done = replay.result(key)
    if done is not None:
        outcome = ToolOutcome.from_json(done.get("outcome") or {})
    else:
        tool = tools.get(name)
        if tool is None:
            report.not_undone.append(f"{call.tool} ({call.key}): its undo tool {name!r} is not available")
            return
        idempotency_key = f"{run_id}/{key}"
        journal.append(
            Kind.INTENT,
            key,
            {"tool": name, "arguments": arguments, "idempotencyKey": idempotency_key, "undoes": call.key},
        )
        with telemetry.tool_span(name, key) as span:
            try:
                outcome = tool.invoke(arguments, ToolContext(run_id, key, idempotency_key, None))
            except ToolError as err:
                outcome = ToolOutcome.error(f"error: {err}")
            except Exception as err:
                outcome = ToolOutcome.error(f"error: the tool failed: {type(err).__name__}: {err}")
            if outcome.is_error:
                span.set_attribute("error.type", "tool_error")
        journal.append(Kind.RESULT, key, {"tool": name, "outcome": outcome.to_json(), "undoes": call.key})
    if outcome.is_error:
        report.not_undone.append(f"{described}: {outcome.content[:200]}")
    else:
        report.undone.append(described)
