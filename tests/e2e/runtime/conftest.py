"""Fixtures for runtime end-to-end tests: runtime processes that are always stopped, a counting endpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.runtime.runtime_process import RuntimeProcess
from unit.runtime.runtime_endpoint import CountingEndpoint


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], RuntimeProcess]]:
    """Start `python -m agency_runtime` with an environment; every process is killed at the end."""
    started: list[RuntimeProcess] = []

    def start(env: dict[str, str]) -> RuntimeProcess:
        process = RuntimeProcess(env, tmp_path / "logs" / str(len(started)))
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def endpoint() -> Iterator[CountingEndpoint]:
    with CountingEndpoint() as server:
        yield server
