"""What each chaos test found, collected for the "chaos report" table at the end of the pytest output."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, fields

import pytest

SEED_VARIABLE = "AGENCY_CHAOS_SEED"


@dataclass
class ChaosReport:
    """One suite's numbers; every count but `runs`, `completed` and `kills` must end at 0."""

    suite: str
    seed: int
    runs: int
    completed: int = 0
    kills: int = 0
    steps_lost: int = 0
    """Scripted steps (model answers, tool results, side effects) not in the outcome exactly once."""
    repeated_calls: int = 0
    """Model requests for a step whose answer was journaled already, or tools called again after a result."""
    duplicate_side_effects: int = 0
    orphans: int = 0
    """Objects or processes of finished (revoked) or deleted runs still there."""
    wall_seconds: float = 0.0

    def zeros(self) -> dict[str, int]:
        """The counts that must be 0, by name (for one assertion that shows them all)."""
        return {
            "steps_lost": self.steps_lost,
            "repeated_calls": self.repeated_calls,
            "duplicate_side_effects": self.duplicate_side_effects,
            "orphans": self.orphans,
        }


REPORTS = pytest.StashKey[list[ChaosReport]]()
#: What the `chaos_report` fixture gives a test: call it with the report.
Record = Callable[[ChaosReport], None]


def seeded() -> tuple[int, random.Random]:
    """A chaos test's seed and its generator: `AGENCY_CHAOS_SEED` replays a failure, else a fresh seed
    (printed in the report and in every assertion message)."""
    given = os.environ.get(SEED_VARIABLE)
    seed = int(given) if given else secrets.randbelow(2**32)
    return seed, random.Random(seed)  # noqa: S311 - reproducible chaos, not cryptography


def table(reports: list[ChaosReport]) -> list[str]:
    """The reports as aligned text rows, a header first."""
    names = [f.name for f in fields(ChaosReport)]
    rows = [[name.replace("_", " ") for name in names]]
    for report in reports:
        rows.append([_cell(getattr(report, name)) for name in names])
    widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]


def _cell(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
