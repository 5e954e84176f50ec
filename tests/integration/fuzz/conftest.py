"""The bad-input fuzz: hypothesis' storage kept out of the repo, and the report printed at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _pytest.terminal import TerminalReporter
from hypothesis.configuration import set_hypothesis_home_dir

from integration.fuzz.tally import TALLIES, report_lines


@pytest.fixture(scope="session", autouse=True)
def _hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis caches (charmaps, constants) in a temporary folder, not `.hypothesis/` in the repo."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not TALLIES:
        return
    terminalreporter.section("bad input report")
    for line in report_lines():
        terminalreporter.write_line(line)
