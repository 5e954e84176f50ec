"""The signal endpoint served by the real operator process (`AGENCY_SIGNALS_PORT`): CloudEvents in, runs out.

Senders are service accounts of the test's namespace with real tokens for the endpoint's audience and a
Role granting `create` on `signals.agency.dev`, as the endpoint's docs tell an admin to write.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    JsonDict,
    OperatorFactory,
    agent,
    api_list,
    apply,
    policy,
    run_path,
    secret,
)
from agency_testbed.procs import free_port

AUDIENCE = "agency.dev/signals"


def _schedule(namespace: str) -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentSchedule",
        "metadata": {"name": "coldchain", "namespace": namespace},
        "spec": {
            "agentRef": {"name": "helper"},
            "input": json.dumps({"phase": "Succeeded"}),
            "concurrencyPolicy": "Allow",
            "signals": [
                {
                    "name": "too-warm",
                    "type": "com.example.coldchain.temperature",
                    "significance": "data.celsius > 8.0",
                }
            ],
        },
    }


def _sender_token(kubectl: Kubectl, namespace: str) -> str:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "signal-sender", "namespace": namespace},
        "rules": [{"apiGroups": ["agency.dev"], "resources": ["signals"], "verbs": ["create"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "sensor-sends-signals", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "signal-sender"},
        "subjects": [{"kind": "ServiceAccount", "name": "sensor", "namespace": namespace}],
    }
    kubectl("create", "serviceaccount", "sensor", "-n", namespace)
    apply(kubectl, role, binding)
    return kubectl("create", "token", "sensor", "-n", namespace, "--audience", AUDIENCE).stdout.strip()


def _event(event_id: str, celsius: float) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/sensors/truck-4",
        "type": "com.example.coldchain.temperature",
        "datacontenttype": "application/json",
        "data": {"celsius": celsius, "lot": "L-889"},
    }


class Endpoint:
    def __init__(self, operator: OperatorFactory, kubectl: Kubectl, namespace: str) -> None:
        port = free_port()
        apply(kubectl, secret(namespace), policy(namespace), agent(namespace), _schedule(namespace))
        self.process = operator.start(executor="local", env={**STUB_ENV, "AGENCY_SIGNALS_PORT": str(port)})
        self.url = f"http://127.0.0.1:{port}/namespaces/{namespace}/signals"

    def post(self, event: dict[str, Any], token: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/cloudevents+json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.url, content=json.dumps(event), headers=headers, timeout=30)


def _run_names(testbed: Testbed, namespace: str) -> list[str]:
    return sorted(r["metadata"]["name"] for r in api_list(testbed, run_path(namespace)))


def test_a_significant_event_sent_three_times_starts_one_run(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    endpoint = Endpoint(operator, kubectl, namespace)
    token = _sender_token(kubectl, namespace)
    answers = [endpoint.post(_event("reading-1", 9.5), token) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202], answers[0].text
    names = _run_names(testbed, namespace)
    assert len(names) == 1
    assert {tuple(a.json()["runs"]) for a in answers} == {tuple(names)}
    assert 'agency_signals_total{outcome="accepted"} 3.0' in endpoint.process.metrics()


def test_an_insignificant_event_starts_no_run(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    endpoint = Endpoint(operator, kubectl, namespace)
    answer = endpoint.post(_event("reading-2", 4.0), _sender_token(kubectl, namespace))
    assert answer.status_code == 202, answer.text
    assert answer.json()["results"][0]["outcome"] == "Insignificant"
    assert _run_names(testbed, namespace) == []


def test_an_unauthenticated_sender_is_refused_with_401_and_starts_nothing(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    endpoint = Endpoint(operator, kubectl, namespace)
    without = endpoint.post(_event("reading-3", 12.0), None)
    forged = endpoint.post(_event("reading-3", 12.0), "not-a-token")
    assert (without.status_code, forged.status_code) == (401, 401)
    assert without.headers["WWW-Authenticate"].startswith("Bearer")
    assert _run_names(testbed, namespace) == []
    assert 'agency_signals_total{outcome="unauthenticated"} 2.0' in endpoint.process.metrics()


def test_a_sender_without_rbac_for_signals_is_refused_with_403(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    endpoint = Endpoint(operator, kubectl, namespace)
    kubectl("create", "serviceaccount", "stranger", "-n", namespace)
    token = kubectl("create", "token", "stranger", "-n", namespace, "--audience", AUDIENCE).stdout.strip()
    answer = endpoint.post(_event("reading-4", 12.0), token)
    assert answer.status_code == 403, answer.text
    assert _run_names(testbed, namespace) == []
