"""What `kubectl agency run` shows while it follows a run: one progress line, then how it ended.

Pure functions of the AgentRun's JSON, so that the wording is tested without a cluster; `ProgressLine`
is the only part that writes, rewriting one line on a terminal and printing one line per change elsewhere
(a log file or CI output keeps every state the run went through).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

FINISHED = frozenset({"Succeeded", "Failed", "BudgetExceeded", "Cancelled"})
WAITING = "WaitingForApproval"


def _status(run: Mapping[str, Any]) -> Mapping[str, Any]:
    return run.get("status") or {}


def phase_of(run: Mapping[str, Any]) -> str:
    return str(_status(run).get("phase") or "Pending")


def format_cost(cost: float) -> str:
    """US dollars with enough digits that a cheap run does not read as free."""
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.6f}".rstrip("0")
    return f"${cost:,.4f}".rstrip("0").rstrip(".")


def progress_line(run: Mapping[str, Any]) -> str:
    """`Running  step 3  tokens 1,240 (1,200 in / 40 out)  cost $0.00042`."""
    status = _status(run)
    usage = status.get("usage") or {}
    tokens_in, tokens_out = int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))
    total = int(usage.get("totalTokens") or tokens_in + tokens_out)
    cost = format_cost(float(usage.get("costUSD", 0)))
    line = (
        f"{phase_of(run)}  step {int(status.get('stepCount', 0))}  "
        f"tokens {total:,} ({tokens_in:,} in / {tokens_out:,} out)  cost {cost}"
    )
    ready = ready_condition(run)
    if phase_of(run) == "Pending" and ready.get("status") == "False" and ready.get("reason"):
        # A run that waits (missing Secret, policy refusal, daily budget) says why, not just "Pending".
        line += f"  waiting: {ready['reason']}"
    return line


def ready_condition(run: Mapping[str, Any]) -> Mapping[str, Any]:
    for cond in _status(run).get("conditions") or []:
        if cond.get("type") == "Ready":
            found: Mapping[str, Any] = cond
            return found
    return {}


def outcome(run: Mapping[str, Any]) -> str:
    """The result of a succeeded run; otherwise why it stopped, from the Ready condition."""
    status = _status(run)
    if phase_of(run) == "Succeeded" and status.get("result") is not None:
        return str(status["result"])
    ready = ready_condition(run)
    reason, message = ready.get("reason"), ready.get("message")
    if reason or message:
        return f"{phase_of(run)}: {reason or ''}{': ' if reason and message else ''}{message or ''}"
    return str(status.get("result") or phase_of(run))


def undecided(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """status.pendingApprovals not yet decided in spec.approvals."""
    decided = {a.get("proposalId") for a in (run.get("spec") or {}).get("approvals") or []}
    return [p for p in _status(run).get("pendingApprovals") or [] if p.get("proposalId") not in decided]


def waiting_message(run: Mapping[str, Any], namespace: str) -> str:
    """What a run waiting for approval proposes, and the commands that decide."""
    name = run["metadata"]["name"]
    pending = undecided(run)
    lines = [f"AgentRun {name} waits for approval:"]
    for p in pending:
        why = f" - {p['reason']}" if p.get("reason") else ""
        lines.append(
            f"  {p.get('proposalId')}: {p.get('tool')}({p.get('argumentsSummary', '')}) "
            f"risk {p.get('risk', '?')}{why}"
        )
    if not pending:
        lines.append(f"  {ready_condition(run).get('message') or 'see status.pendingApprovals'}")
    flag = "" if len(pending) == 1 else " --proposal ID"
    lines.append(f"Decide with: kubectl agency approve {name}{flag} -n {namespace}   (or: reject)")
    return "\n".join(lines)


class ProgressLine:
    """One line of progress: rewritten in place on a terminal, a new line per change otherwise."""

    def __init__(self, out: TextIO, *, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.last = ""

    def show(self, line: str) -> None:
        if line == self.last:
            return
        if self.tty:
            self.out.write(f"\r{line}\x1b[K")
        else:
            self.out.write(f"{line}\n")
        self.out.flush()
        self.last = line

    def end(self) -> None:
        """Leave the terminal's cursor on a fresh line."""
        if self.tty and self.last:
            self.out.write("\n")
            self.out.flush()
