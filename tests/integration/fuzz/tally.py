"""Counts of the bad-input fuzz, per kind (or endpoint), for the report printed at the end of the session."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    """What happened to the generated inputs of one kind."""

    generated: int = 0
    accepted: int = 0
    reconciled: int = 0
    rejected: int = 0
    rejected_naming_field: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Errors the operator logged about objects already judged and deleted (deletion races), not failures."""
    seconds: float = 0.0
    """Wall time spent creating, following and deleting (operator start-up excluded)."""
    mutations: Counter[str] = field(default_factory=Counter)

    def fail(self, what: str) -> None:
        if what not in self.failures:  # the resync repeats a failing reconcile every second
            self.failures.append(what)


#: One tally per kind (and one for the signal endpoint), filled by the tests, printed by conftest.
TALLIES: dict[str, Tally] = {}


def tally(name: str) -> Tally:
    return TALLIES.setdefault(name, Tally())


def report_lines() -> list[str]:
    """The "bad input report" table."""
    head = (
        f"{'kind':<16}{'generated':>10}{'accepted':>10}{'reconciled':>12}{'rejected':>10}"
        f"{'named':>8}{'failures':>10}{'seconds':>9}"
    )
    lines = [head, "-" * len(head)]
    for name, t in TALLIES.items():
        lines.append(
            f"{name:<16}{t.generated:>10}{t.accepted:>10}{t.reconciled:>12}{t.rejected:>10}"
            f"{t.rejected_naming_field:>8}{len(t.failures):>10}{t.seconds:>9.1f}"
        )
    for name, t in TALLIES.items():
        if t.notes:
            lines.append(f"  {name}: {len(t.notes)} operator log line(s) about objects already deleted, e.g.")
            lines.append(f"    {t.notes[0][:300]}")
        lines += [f"  {name} failure: {f}" for f in t.failures[:20]]
        if len(t.failures) > 20:
            lines.append(f"  {name}: {len(t.failures) - 20} more failures")
    return lines
