"""A run's own identity: its token can do what its policy grants and nothing else, and dies with the run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    OperatorFactory,
    agent,
    api_get,
    api_list,
    apply,
    policy,
    run,
    run_path,
    secret,
    wait_for,
    wait_for_phase,
)


@dataclass
class RunningRun:
    name: str
    namespace: str
    folder: Path
    token: str


@pytest.fixture
def other_namespace(testbed: Testbed) -> Iterator[str]:
    name = f"t-other-{secrets.token_hex(3)}"
    testbed.kubectl("create", "namespace", name)
    testbed.kubectl("create", "secret", "generic", "not-yours", "-n", name, "--from-literal=k=v")
    yield name
    testbed.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def secret_reader(testbed: Testbed) -> Iterator[str]:
    """A ClusterRole that reads Secrets: what the test policy grants runs, in their own namespace only."""
    name = f"agency-test-secret-reader-{secrets.token_hex(3)}"
    testbed.kubectl("create", "clusterrole", name, "--verb=get,list", "--resource=secrets")
    yield name
    testbed.kubectl("delete", "clusterrole", name, check=False)


@pytest.fixture
def running(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, secret_reader: str
) -> RunningRun:
    """A run (local executor, stub runtime) held running until the test writes its `release` file."""
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, identity={"clusterRoles": [{"name": secret_reader}]}),
        agent(namespace),
        run(namespace, "r1", ask={"wait": True}),
        run(namespace, "r2", ask={"wait": True}),
    )
    operator.start(executor="local", env=STUB_ENV)
    wait_for_phase(testbed, namespace, "r1", "Running")
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    folder = operator.workdir / namespace / f"r1-{uid}"
    return RunningRun("r1", namespace, folder, (folder / "token").read_text())


def test_run_token_reads_what_its_policy_grants(testbed: Testbed, running: RunningRun) -> None:
    with testbed.http(token=running.token) as http:
        assert http.get(f"/api/v1/namespaces/{running.namespace}/secrets/model-key").status_code == 200


def test_run_token_reads_its_own_run_and_run_file_and_patches_its_status(
    testbed: Testbed, running: RunningRun
) -> None:
    ns = running.namespace
    with testbed.http(token=running.token) as http:
        assert http.get(run_path(ns, "r1")).status_code == 200
        # Authorized (a denial is 403 before any lookup); the local executor keeps the run file on disk.
        assert http.get(f"/api/v1/namespaces/{ns}/configmaps/agency-run-r1").status_code == 404
        assert http.get(f"/api/v1/namespaces/{ns}/configmaps/agency-run-r2").status_code == 403
        patched = http.patch(
            run_path(ns, "r1") + "/status",
            json={"status": {"stepCount": 1}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code == 200, patched.text


def test_run_token_cannot_read_other_namespace_secrets(
    testbed: Testbed, running: RunningRun, other_namespace: str
) -> None:
    with testbed.http(token=running.token) as http:
        assert http.get(f"/api/v1/namespaces/{other_namespace}/secrets/not-yours").status_code == 403
        assert http.get(f"/api/v1/namespaces/{other_namespace}/secrets").status_code == 403


def test_run_token_cannot_touch_other_runs(testbed: Testbed, running: RunningRun) -> None:
    ns = running.namespace
    with testbed.http(token=running.token) as http:
        assert http.get(run_path(ns, "r2")).status_code == 403
        patched = http.patch(
            run_path(ns, "r2") + "/status",
            json={"status": {"phase": "Succeeded"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code == 403
        assert http.get(run_path(ns)).status_code == 403


def test_run_token_cannot_create_role_bindings(testbed: Testbed, running: RunningRun) -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "escalate", "namespace": running.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [
            {"kind": "ServiceAccount", "name": f"agency-run-{running.name}", "namespace": running.namespace}
        ],
    }
    with testbed.http(token=running.token) as http:
        created = http.post(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{running.namespace}/rolebindings", json=binding
        )
    assert created.status_code == 403


def _authenticated(testbed: Testbed, token: str) -> bool:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    with testbed.http() as http:
        answer = http.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)
    answer.raise_for_status()
    return bool(answer.json()["status"].get("authenticated"))


def test_run_token_is_rejected_by_token_review_after_the_run_finishes(
    testbed: Testbed, running: RunningRun
) -> None:
    assert _authenticated(testbed, running.token)
    (running.folder / "release").touch()
    status = wait_for_phase(testbed, running.namespace, running.name, "Succeeded")
    # The API server caches successful token authentications for up to 10 seconds.
    wait_for(lambda: not _authenticated(testbed, running.token), 30, "TokenReview to reject the run's token")
    assert {c["type"]: c["reason"] for c in status["conditions"]}["IdentityReady"] == "Revoked"
    ns = running.namespace
    assert api_get(testbed, f"/api/v1/namespaces/{ns}/serviceaccounts/agency-run-{running.name}") is None
    uid = api_get(testbed, run_path(ns, running.name))["metadata"]["uid"]  # type: ignore[index]
    selector = f"agency.dev/run-uid={uid}"
    wait_for(
        lambda: (
            not api_list(testbed, "/apis/rbac.authorization.k8s.io/v1/rolebindings", selector)
            and not api_list(testbed, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", selector)
        ),
        10,
        "the run's Role and RoleBindings to be deleted",
    )
