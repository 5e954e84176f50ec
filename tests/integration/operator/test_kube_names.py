"""The resync's pass over every object: names only, page by page, none missed at page boundaries."""

from __future__ import annotations

from agency_operator.kube import Kube, path_for
from agency_testbed.cluster import Testbed


def test_names_walks_every_page_of_a_collection(testbed: Testbed, namespace: str) -> None:
    ours = {f"c{i}" for i in range(7)}
    for name in sorted(ours):
        testbed.kubectl("create", "configmap", name, "-n", namespace, "--from-literal=big=" + "x" * 1000)
    kube = Kube.from_environment(kubeconfig=testbed.kubeconfig)
    try:
        seen = list(kube.names(path_for("v1", "configmaps", namespace), page=3))
    finally:
        kube.close()
    names = [name for _ns, name in seen]
    assert len(names) == len(set(names))  # no name twice at a page boundary
    assert ours <= set(names)  # three pages and a bit: none missed
    # kube-controller-manager adds the namespace's CA bundle whenever it gets to it; nothing else is there
    assert set(names) - ours <= {"kube-root-ca.crt"}
    assert {ns for ns, _name in seen} == {namespace}


def test_names_of_an_empty_collection_is_empty(testbed: Testbed, namespace: str) -> None:
    # The API server answers an empty metadata-only list with `items: null`; the resync saw it as an error.
    kube = Kube.from_environment(kubeconfig=testbed.kubeconfig)
    try:
        assert list(kube.names(path_for("v1", "resourcequotas", namespace))) == []
    finally:
        kube.close()
