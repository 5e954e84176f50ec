"""The `pod` executor on the testbed: the Pod as the API stores it, deletion, crashes, idempotency.

No kubelet runs here, so Pods stay Pending; where a test needs a finished Pod it writes the Pod's status
as a kubelet would (phase, and the container's termination message holding the runtime's result).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    OperatorFactory,
    agent,
    api_get,
    api_list,
    apply,
    condition,
    finish_pod,
    policy,
    run,
    run_path,
    run_status,
    secret,
    wait_for,
    wait_for_phase,
)

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _pod(testbed: Testbed, namespace: str, name: str = "r1") -> dict[str, Any] | None:
    return api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/{name}")


def _wait_for_pod(testbed: Testbed, namespace: str, name: str = "r1") -> dict[str, Any]:
    wait_for(lambda: _pod(testbed, namespace, name), 60, f"Pod {namespace}/{name}")
    pod = _pod(testbed, namespace, name)
    assert pod is not None
    return pod


RESULT = {
    "phase": "Succeeded",
    "reason": "Completed",
    "message": "done",
    "result": "all good",
    "steps": 3,
    "usage": {"inputTokens": 120, "outputTokens": 30, "costUSD": 0.0021},
    "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
}


@pytest.fixture
def other_namespace(testbed: Testbed) -> Iterator[str]:
    name = f"t-grant-{secrets.token_hex(3)}"
    testbed.kubectl("create", "namespace", name)
    yield name
    testbed.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_run_pod_is_restricted_and_gets_a_projected_audience_bound_token(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, identity={"tokenAudience": "agency-runs", "tokenExpirationSeconds": 900}),
        agent(namespace),
        run(namespace, budget={"maxSteps": 7}),
    )
    operator.start(executor="pod", env={"AGENCY_OTLP_ENDPOINT": "http://10.1.2.3:4318"})
    pod = _wait_for_pod(testbed, namespace)
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "agency-run-r1"
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    token = next(v for v in spec["volumes"] if v["name"] == "token")["projected"]["sources"][0]
    assert token["serviceAccountToken"] == {
        "audience": "agency-runs",
        "expirationSeconds": 900,
        "path": "token",
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["AGENCY_MODEL_API_KEY"] == {
        "name": "AGENCY_MODEL_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "model-key", "key": "apiKey"}},
    }
    assert "sk-test" not in json.dumps(pod)
    assert env["AGENCY_RUN_NAME"]["value"] == "r1"
    assert env["AGENCY_BUDGET_MAX_STEPS"]["value"] == "7"
    assert env["AGENCY_KUBE_TOKEN_FILE"]["value"] == "/var/run/secrets/agency.dev/serviceaccount/token"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://10.1.2.3:4318"
    assert (
        env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
        == f"agency.agent=helper,agency.run=r1,k8s.namespace.name={namespace}"
    )
    run_uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    (owner,) = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "AgentRun",
        "r1",
        run_uid,
        True,
    )
    run_file = api_get(testbed, f"/api/v1/namespaces/{namespace}/configmaps/agency-run-r1")
    assert run_file is not None
    assert json.loads(run_file["data"]["run.json"])["agent"]["model"]["name"] == "openai/triage"
    assert run_file["metadata"]["ownerReferences"][0]["uid"] == run_uid


def test_run_network_policy_denies_all_but_dns_api_model_otlp_and_policy_egress(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    egress = [{"cidrs": ["10.20.0.0/16"], "ports": [{"port": 5432}]}]
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, network={"egress": egress}),
        agent(namespace),
        run(namespace),
    )
    operator.start(executor="pod", env={"AGENCY_OTLP_ENDPOINT": "http://10.1.2.3:4318"})
    path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/agency-run-r1"
    wait_for(lambda: api_get(testbed, path), 60, "the run's NetworkPolicy")
    spec = api_get(testbed, path)["spec"]  # type: ignore[index]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert not spec.get("ingress")
    rules = [
        (sorted(p["ipBlock"]["cidr"] for p in r.get("to", []) if "ipBlock" in p), r["ports"])
        for r in spec["egress"]
    ]
    assert (["127.0.0.1/32"], [{"protocol": "TCP", "port": 9}]) in rules  # the model's apiBase
    assert (["10.1.2.3/32"], [{"protocol": "TCP", "port": 4318}]) in rules  # OTLP
    assert (["10.20.0.0/16"], [{"protocol": "TCP", "port": 5432}]) in rules  # the policy's rule
    assert any(p["port"] == 53 for r in spec["egress"] for p in r["ports"])  # DNS
    assert len(spec["egress"]) == 5  # DNS, API, model, OTLP, policy; nothing else


def test_finished_pod_is_mirrored_into_run_status_and_identity_is_removed(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace))
    operator.start(executor="pod")
    _wait_for_pod(testbed, namespace)
    finish_pod(testbed, namespace, RESULT)
    status = wait_for_phase(testbed, namespace, "r1", "Succeeded")
    assert status["stepCount"] == 3
    assert status["usage"] == {"inputTokens": 120, "outputTokens": 30, "totalTokens": 150, "costUSD": 0.0021}
    assert status["traceId"] == RESULT["traceId"]
    assert status["result"] == "all good"
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is None
    shown = kubectl("get", "agentrun", "r1", "-n", namespace, "-o", "wide").stdout
    assert "Succeeded" in shown
    assert "150" in shown


def test_failed_runtime_without_result_fails_the_run_saying_so(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace))
    operator.start(executor="pod")
    _wait_for_pod(testbed, namespace)
    finish_pod(
        testbed, namespace, {"phase": "Failed", "reason": "ModelError", "message": "the model said no"}
    )
    status = wait_for_phase(testbed, namespace, "r1", "Failed")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "ModelError",
        "the model said no",
    )


def test_deleting_a_run_mid_flight_removes_its_pod_service_account_and_bindings(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str, other_namespace: str
) -> None:
    grants = [{"name": "view", "namespaces": [namespace, other_namespace]}]
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, identity={"clusterRoles": grants}),
        agent(namespace),
        run(namespace),
    )
    operator.start(executor="pod")
    _wait_for_pod(testbed, namespace)
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    selector = f"agency.dev/run-uid={uid}"
    assert len(api_list(testbed, f"{RBAC}/rolebindings", selector)) == 3  # own Role + view here + view there
    kubectl("delete", "agentrun", "r1", "-n", namespace, "--wait=true")

    def gone() -> bool:
        return (
            _pod(testbed, namespace) is None
            and api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is None
            and not api_list(testbed, f"{RBAC}/rolebindings", selector)
            and not api_list(testbed, f"{RBAC}/namespaces/{namespace}/roles", selector)
            and not api_list(testbed, f"/api/v1/namespaces/{namespace}/configmaps", selector)
        )

    wait_for(gone, 60, "the run's Pod, ServiceAccount, Role, RoleBindings and run file to be deleted")


def test_operator_killed_between_service_account_and_pod_finishes_the_run_without_duplicates(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, identity={"clusterRoles": [{"name": "view"}]}),
        agent(namespace),
    )
    crashing = operator.start(executor="pod", env={"AGENCY_TEST_CRASH_AFTER": "serviceaccount"})
    apply(kubectl, run(namespace))
    wait_for(lambda: not crashing.alive(), 60, "the operator to die right after creating the ServiceAccount")
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is not None
    assert _pod(testbed, namespace) is None

    operator.start(executor="pod")
    _wait_for_pod(testbed, namespace)
    finish_pod(testbed, namespace, RESULT)
    wait_for_phase(testbed, namespace, "r1", "Succeeded")
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    selector = f"agency.dev/run-uid={uid}"
    assert len(api_list(testbed, f"/api/v1/namespaces/{namespace}/pods", selector)) == 1
    assert len(api_list(testbed, f"/api/v1/namespaces/{namespace}/configmaps", selector)) == 1
    assert (
        len(api_list(testbed, f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies", selector))
        == 1
    )
    wait_for(
        lambda: (
            not api_list(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts", selector)
            and not api_list(testbed, f"{RBAC}/rolebindings", selector)
            and not api_list(testbed, f"{RBAC}/namespaces/{namespace}/roles", selector)
        ),
        30,
        "no identity left behind by the finished run",
    )


def test_reconciling_again_changes_nothing(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, identity={"clusterRoles": [{"name": "view"}]}),
        agent(namespace),
        run(namespace),
    )
    op = operator.start(executor="pod")
    _wait_for_pod(testbed, namespace)
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    selector = f"agency.dev/run-uid={uid}"
    paths = [
        run_path(namespace),
        f"/api/v1/namespaces/{namespace}/pods",
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        f"/api/v1/namespaces/{namespace}/configmaps",
        f"{RBAC}/namespaces/{namespace}/roles",
        f"{RBAC}/namespaces/{namespace}/rolebindings",
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
    ]

    def versions() -> dict[str, str]:
        found = {}
        for path in paths:
            for item in api_list(testbed, path, None if path == run_path(namespace) else selector):
                found[f"{path}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
        return found

    def settled() -> bool:
        ready = condition(run_status(testbed, namespace, "r1"), "Ready") or {}
        return ready.get("reason") == "Starting"  # a Pod no kubelet starts: the run's steady state here

    wait_for(settled, 30, "the run to settle while its Pod is pending")
    before, status_before = versions(), run_status(testbed, namespace, "r1")
    assert len(before) == 8  # the run, its Pod, ServiceAccount, run file, Role, 2 RoleBindings, NetworkPolicy
    seen = op.reconciles()
    pod = f"/api/v1/namespaces/{namespace}/pods/r1"
    for poke in range(3):  # a Pod event reconciles its run at once (the resync passes a started run over)
        kubectl("annotate", "pod", "r1", "-n", namespace, f"test.agency.dev/poke={poke}", "--overwrite")
    wait_for(lambda: op.reconciles() >= seen + 3, 30, "three more reconciles of the run")
    after = versions()
    assert after.pop(pod) != before.pop(pod)  # the test's own annotations
    assert after == before, (status_before, run_status(testbed, namespace, "r1"))
    # No finalizer: children are owned by the run, so a run can be deleted while the operator is down.
    assert not api_get(testbed, run_path(namespace, "r1"))["metadata"].get("finalizers")  # type: ignore[index]


def test_agent_status_follows_its_runs_start_and_end_from_their_events_alone(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    # A resync far beyond the test: only the runs' and Pods' watch events can move the Agent's status.
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace))
    operator.start(executor="pod", env={"AGENCY_RESYNC_SECONDS": "3600"})

    def agent_status() -> dict[str, Any]:
        body = api_get(testbed, f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agents/helper")
        return (body or {}).get("status") or {}

    wait_for(
        lambda: (condition(agent_status(), "Ready") or {}).get("status") == "True",
        60,
        "the Agent to be Ready",
    )
    apply(kubectl, run(namespace))
    _wait_for_pod(testbed, namespace)
    wait_for(
        lambda: (
            (agent_status().get("runsInFlight"), agent_status().get("lastRun", {}).get("name")) == (1, "r1")
        ),
        30,
        "the Agent to count its started run",
    )
    finish_pod(testbed, namespace, RESULT)
    wait_for_phase(testbed, namespace, "r1", "Succeeded")
    wait_for(
        lambda: (
            (agent_status().get("runsInFlight"), agent_status().get("lastRun", {}).get("phase"))
            == (0, "Succeeded")
        ),
        30,
        "the Agent to count its finished run",
    )
    assert agent_status()["usageToday"]["costUSD"] == pytest.approx(0.0021)


def test_agent_status_counts_runs_made_while_the_operator_was_down_and_a_deleted_one_at_once(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    # A resync far beyond the test: the restarted operator must list the runs it did not see made, and
    # only the DELETED event can tell the Agent a run went.
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace, "r1"))
    env = {"AGENCY_RESYNC_SECONDS": "3600"}
    first = operator.start(executor="pod", env=env)

    def counted() -> tuple[object, object]:
        body = api_get(testbed, f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agents/helper")
        status = (body or {}).get("status") or {}
        return status.get("runsInFlight"), (status.get("lastRun") or {}).get("name")

    _wait_for_pod(testbed, namespace, "r1")
    wait_for(lambda: counted() == (1, "r1"), 30, "the Agent to count r1", lambda: str(counted()))
    first.stop()
    apply(kubectl, run(namespace, "r2"))  # made while no operator watched
    operator.start(executor="pod", env=env)
    _wait_for_pod(testbed, namespace, "r2")
    wait_for(lambda: counted() == (2, "r2"), 30, "the Agent to count both runs", lambda: str(counted()))
    kubectl("delete", "agentrun", "r2", "-n", namespace, "--wait=false")
    wait_for(lambda: counted() == (1, "r1"), 30, "the Agent to count r1 alone", lambda: str(counted()))
