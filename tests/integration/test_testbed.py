"""The testbed is a real control plane: CRDs, RBAC, TokenRequest/TokenReview and garbage collection work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from agency_testbed.cluster import Kubectl, Testbed

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.testbed.agency.dev}
spec:
  group: testbed.agency.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def _wait(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def test_kubectl_apply_of_a_crd_serves_the_new_kind(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", stdin=WIDGET_CRD)
    kubectl("wait", "--for=condition=Established", "crd/widgets.testbed.agency.dev", "--timeout=30s")

    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin="apiVersion: testbed.agency.dev/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n",
    )
    refused = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        stdin="apiVersion: testbed.agency.dev/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n",
    )

    got = json.loads(kubectl("get", "widget", "w1", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["size"] == 3
    assert refused.returncode != 0
    assert "spec.size" in refused.stderr


def test_service_account_is_denied_secrets_until_a_rolebinding_allows_them(
    testbed: Testbed, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "serviceaccount", "reader", "-n", namespace)
    token = kubectl("create", "token", "reader", "-n", namespace, "--duration=10m").stdout.strip()
    url = f"/api/v1/namespaces/{namespace}/secrets"

    with testbed.http(token=token) as api:
        before = api.get(url)
        kubectl("create", "role", "secret-reader", "--verb=list", "--resource=secrets", "-n", namespace)
        kubectl(
            "create",
            "rolebinding",
            "reader",
            "--role=secret-reader",
            f"--serviceaccount={namespace}:reader",
            "-n",
            namespace,
        )
        _wait(lambda: api.get(url).status_code == 200, 30, "the RoleBinding to take effect")
        other = api.get("/api/v1/namespaces/default/secrets")

    assert before.status_code == 403
    assert 'cannot list resource "secrets"' in before.json()["message"]
    assert other.status_code == 403


def _token_review(api: httpx.Client, token: str, audience: str) -> dict[str, object]:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [audience]},
    }
    resp = api.post("/apis/authentication.k8s.io/v1/tokenreviews", json=body)
    resp.raise_for_status()
    status: dict[str, object] = resp.json()["status"]
    return status


def test_token_with_an_audience_passes_token_review_only_for_that_audience(
    testbed: Testbed, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "serviceaccount", "runner", "-n", namespace)
    token = kubectl(
        "create", "token", "runner", "-n", namespace, "--audience=agency.dev/signals", "--duration=10m"
    ).stdout.strip()
    with testbed.http() as admin:
        right = _token_review(admin, token, "agency.dev/signals")
        wrong = _token_review(admin, token, "someone-else")

    assert right["authenticated"] is True
    user = right["user"]
    assert isinstance(user, dict)
    assert user["username"] == f"system:serviceaccount:{namespace}:runner"
    assert not wrong.get("authenticated")


def test_garbage_collector_deletes_a_configmap_after_its_owner(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "configmap", "owner", "-n", namespace)
    uid = kubectl("get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "namespace": namespace,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(owned))

    kubectl("delete", "configmap", "owner", "-n", namespace)

    def owned_gone() -> bool:
        return kubectl("get", "configmap", "owned", "-n", namespace, check=False).returncode != 0

    _wait(owned_gone, 60, "the garbage collector to delete the owned ConfigMap")


def test_testbed_binaries_report_their_real_version(testbed: Testbed) -> None:
    out = json.loads(testbed.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"].startswith("v1.")
    assert out["clientVersion"]["gitVersion"] == out["serverVersion"]["gitVersion"]
    assert Path(testbed.kubeconfig).exists()
