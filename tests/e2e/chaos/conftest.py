"""Chaos tests: each records a `ChaosReport` (before it asserts), printed as one table at the end."""

from __future__ import annotations

import pytest

from e2e.chaos.report import REPORTS, SEED_VARIABLE, ChaosReport, Record, table


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Record:
    """Call with the test's report once it is measured, before asserting, so a failure shows it too."""

    def record(report: ChaosReport) -> None:
        request.config.stash.setdefault(REPORTS, []).append(report)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    reports = config.stash.get(REPORTS, [])
    if not reports:
        return
    terminalreporter.section("chaos report")
    for line in table(reports):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(replay a run's kills with {SEED_VARIABLE}=<seed>)")
