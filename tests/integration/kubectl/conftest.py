"""`kubectl agency` tests: the plugin run as a user runs it, `kubectl agency ...` with the venv on PATH."""

from __future__ import annotations

import pytest

from agency_testbed.cluster import Testbed
from agency_testbed.fixtures_operator import operator  # noqa: F401 - the fixture, until registered globally
from integration.kubectl.kubectl_plugin import Plugin


@pytest.fixture
def plugin(testbed: Testbed, agency_crds: list[str]) -> Plugin:
    """`kubectl agency ...` as the testbed's admin (KUBECONFIG), with the CRDs installed."""
    return Plugin(testbed)
