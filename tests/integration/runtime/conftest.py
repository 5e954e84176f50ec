"""Runtime tests against the testbed's API server: the run's own token, the CRDs and admission policies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agency_testbed.cluster import Testbed
from integration.runtime.run_identity import RunIdentity, create_run
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Runner


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def endpoint() -> Iterator[CountingEndpoint]:
    with CountingEndpoint() as server:
        yield server


@pytest.fixture
def identity(
    testbed: Testbed, agency_crds: list[str], namespace: str, tmp_path: Path
) -> Iterator[RunIdentity]:
    """The AgentRun `run-1` in the test's namespace and its identity (the Role the operator generates)."""
    made = create_run(testbed, namespace, "run-1", tmp_path)
    yield made
    made.close()
