"""The resync's pass over every object: names only, page by page, none missed at page boundaries."""

from __future__ import annotations

import pytest

from agency_operator.kube import Kube, path_for
from agency_testbed.cluster import Testbed


def test_names_walks_every_page_of_a_collection(
    testbed: Testbed, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(7):
        testbed.kubectl("create", "configmap", f"c{i}", "-n", namespace, "--from-literal=big=" + "x" * 1000)
    expected = set(testbed.kubectl("get", "configmaps", "-n", namespace, "-o", "name").stdout.split())
    monkeypatch.setenv("KUBECONFIG", str(testbed.kubeconfig))
    kube = Kube.from_environment()
    try:
        seen = list(kube.names(path_for("v1", "configmaps", namespace), page=3))
    finally:
        kube.close()
    assert len(seen) == len(expected) >= 7  # three pages and a bit; no name twice
    assert {f"configmap/{name}" for _ns, name in seen} == expected
    assert {ns for ns, _name in seen} == {namespace}
