"""The operator's production login on the testbed: its own ServiceAccount, bound to its ClusterRole only.

    with operator_login(testbed, "agency-system", tmp_path) as kubeconfig:
        operator.start(kubeconfig=kubeconfig)   # as the chart's operator: a bearer token, no admin

A ServiceAccount `agency-operator` in `namespace`, the ClusterRole `rbac.build_operator_cluster_role`
builds (binding only `bindable`) and its ClusterRoleBinding, a token of `hours` hours, and a kubeconfig
that logs in with it. The ClusterRole and binding go when the block ends (the ServiceAccount goes with
its namespace). Tests use it to show the documented role is enough; benchmarks use it so the API server
authenticates the operator as in a cluster (a cached bearer token, not an admin client certificate whose
chain it verifies on every request).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

from agency_operator.rbac import build_operator_cluster_role
from agency_testbed.cluster import Testbed

SERVICE_ACCOUNT = "agency-operator"


@contextmanager
def operator_login(
    testbed: Testbed, namespace: str, folder: Path, *, bindable: Sequence[str] = ("view",), hours: int = 2
) -> Iterator[Path]:
    name = f"agency-operator-{secrets.token_hex(3)}"
    role = build_operator_cluster_role(name, list(bindable))
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
    }
    testbed.kubectl("create", "serviceaccount", SERVICE_ACCOUNT, "-n", namespace)
    testbed.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )
    try:
        token = testbed.kubectl(
            "create", "token", SERVICE_ACCOUNT, "-n", namespace, f"--duration={hours}h"
        ).stdout.strip()
        path = folder / "operator.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "testbed",
                            "cluster": {
                                "server": testbed.server,
                                "certificate-authority": str(testbed.folder / "pki" / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "operator", "user": {"token": token}}],
                    "contexts": [{"name": "operator", "context": {"cluster": "testbed", "user": "operator"}}],
                    "current-context": "operator",
                }
            )
        )
        yield path
    finally:
        testbed.kubectl("delete", "clusterrolebinding,clusterrole", name, check=False)
