"""Fixtures every test can use: the real control plane, a namespace per test, the CRDs, Jaeger, the LLM.

The control plane starts once per session on loopback ports of its own. Set `AGENCY_TESTBED_DIR` to a
folder where `make testbed` already runs one to reuse it (it is then left running).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.procs import wait_until

pytest_plugins = [
    "agency_testbed.fixtures_llm",
    "agency_testbed.fixtures_jaeger",
    "agency_testbed.fixtures_operator",
]

REPO = Path(__file__).resolve().parent.parent
_FOLDER_MARKERS = {"unit": pytest.mark.unit, "integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so `-m unit` picks the fast ones."""
    for item in items:
        parts = Path(str(item.path)).relative_to(REPO / "tests").parts
        marker = _FOLDER_MARKERS.get(parts[0]) if parts else None
        if marker is not None:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    reuse = os.environ.get("AGENCY_TESTBED_DIR")
    if reuse:
        tb = Testbed.attach(Path(reuse).resolve())
        if not tb.running():
            pytest.fail(f"AGENCY_TESTBED_DIR={reuse} holds no running testbed; run `make testbed`")
        yield tb
        return
    with tempfile.TemporaryDirectory(prefix="agency-testbed-") as tmp:
        tb = Testbed.start(Path(tmp))
        try:
            yield tb
        finally:
            tb.stop()


@pytest.fixture
def kubectl(testbed: Testbed) -> Kubectl:
    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return testbed.kubectl(*args, stdin=stdin, check=check)

    return run


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


@pytest.fixture
def namespace(testbed: Testbed, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted (without waiting) when the test ends."""
    name = f"t-{_slug(request.node.name.removeprefix('test_'), 40)}-{secrets.token_hex(3)}"
    testbed.kubectl("create", "namespace", name)
    yield name
    testbed.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def agency_crds(testbed: Testbed) -> list[str]:
    """Every file in `crds/` applied (CRDs, Established, and admission policies); returns the CRD names."""
    files = sorted((REPO / "crds").glob("*.yaml"))
    if not files:
        pytest.fail("crds/ is empty: run `make crds`")
    args = [a for f in files for a in ("-f", str(f))]
    testbed.kubectl("apply", "--server-side", "--force-conflicts", *args)
    out = testbed.kubectl("get", *args, "-o", "name").stdout.split()
    crds = [n for n in out if n.startswith("customresourcedefinition")]  # beside them: admission policies
    testbed.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
    names = [n.split("/", 1)[1] for n in crds]
    plurals = [name.split(".", 1)[0] for name in names]

    def served_and_documented() -> bool:
        # `api-resources` refreshes kubectl's discovery cache; `explain` needs the OpenAPI document, which
        # the apiserver publishes a moment after the CRD is Established.
        listed = testbed.kubectl("api-resources", "--api-group=agency.dev", "-o", "name", check=False).stdout
        if not all(f"{plural}.agency.dev" in listed.split() for plural in plurals):
            return False
        return all(testbed.kubectl("explain", plural, check=False).returncode == 0 for plural in plurals)

    wait_until(served_and_documented, 60, "the agency.dev kinds in discovery and OpenAPI")
    return names


@pytest.fixture(scope="session")
def k8s_api(testbed: Testbed) -> Iterator[object]:
    """A `kubernetes.client.ApiClient` logged in as the testbed's admin."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(testbed.kubeconfig))
    yield client
    client.close()
