"""`kubectl agency usage`: tokens and cost summed over AgentRuns, by namespace and agent.

The sums come from each run's status.usage, so they cover the runs that still exist: a finished run is
deleted after its ttlSecondsAfterFinished and its spending leaves the table with it. The table says so,
with the oldest run it counts, rather than pretending to be a billing period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agency_runtime.kubectl.progress import format_cost

HEADER = ("NAMESPACE", "AGENT", "RUNS", "INPUT TOKENS", "OUTPUT TOKENS", "COST (USD)")


@dataclass
class Row:
    namespace: str
    agent: str
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, usage: Mapping[str, Any]) -> None:
        self.runs += 1
        self.input_tokens += int(usage.get("inputTokens", 0))
        self.output_tokens += int(usage.get("outputTokens", 0))
        self.cost_usd += float(usage.get("costUSD", 0.0))


def summarize(runs: Iterable[Mapping[str, Any]], agent: str | None = None) -> list[Row]:
    """One row per (namespace, agent), sorted; runs of other agents are left out when `agent` is given."""
    rows: dict[tuple[str, str], Row] = {}
    for run in runs:
        name = str(((run.get("spec") or {}).get("agentRef") or {}).get("name", "?"))
        if agent is not None and name != agent:
            continue
        namespace = str(run["metadata"].get("namespace", ""))
        row = rows.setdefault((namespace, name), Row(namespace, name))
        row.add((run.get("status") or {}).get("usage") or {})
    return [rows[key] for key in sorted(rows)]


def total(rows: Sequence[Row]) -> Row:
    out = Row("TOTAL", "")
    for row in rows:
        out.runs += row.runs
        out.input_tokens += row.input_tokens
        out.output_tokens += row.output_tokens
        out.cost_usd += row.cost_usd
    return out


def table(rows: Sequence[Row]) -> str:
    """Aligned columns like kubectl's; numbers right-aligned; a TOTAL line when there are several rows."""
    cells = [
        (
            r.namespace,
            r.agent,
            str(r.runs),
            f"{r.input_tokens:,}",
            f"{r.output_tokens:,}",
            format_cost(r.cost_usd),
        )
        for r in [*rows, *([total(rows)] if len(rows) > 1 else [])]
    ]
    widths = [max(len(c[i]) for c in [HEADER, *cells]) for i in range(len(HEADER))]

    def line(row: Sequence[str]) -> str:
        out = [v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))]
        return "   ".join(out).rstrip()

    return "\n".join(line(r) for r in [HEADER, *cells])


def period(runs: Sequence[Mapping[str, Any]]) -> str:
    """The sentence saying what the sums cover."""
    if not runs:
        return "No AgentRuns found."
    oldest = min(str(r["metadata"].get("creationTimestamp", "")) for r in runs)
    return (
        f"Covers the {len(runs)} AgentRun(s) that still exist, the oldest created {oldest}; "
        "runs deleted after their ttlSecondsAfterFinished are not counted."
    )
