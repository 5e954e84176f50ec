"""Pytest plugin: one real Jaeger v2 per test session, shared by every test that asks for ``jaeger``.

One per session because starting it costs about a second and the in-memory store keeps traces apart by
trace id and service name; tests use a unique service name each. Register it with
``pytest_plugins = ["agency_testbed.fixtures_jaeger"]`` in tests/conftest.py.

A missing binary fails the test with the command that builds it, rather than skipping: a skipped trace
test looks like a passing one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agency_testbed.jaeger import Jaeger, JaegerNotBuilt, JaegerStartError


@pytest.fixture(scope="session")
def jaeger() -> Iterator[Jaeger]:
    """A running Jaeger: ``otlp_http_endpoint`` to export to, query helpers to read traces back."""
    server = Jaeger()
    problem = ""
    try:
        server.start()
    except (JaegerNotBuilt, JaegerStartError) as err:
        problem = str(err)  # failed outside the except block, so the report is not a chained traceback
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield server
    finally:
        server.stop()
