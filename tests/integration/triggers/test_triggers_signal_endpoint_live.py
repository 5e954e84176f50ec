"""The signal endpoint against the real API server: TokenReview, SubjectAccessReview, AgentRuns created.

The endpoint runs in a thread of its own with its own asyncio loop (as it would inside the operator's),
on a free loopback port; senders are service accounts of the test's namespace with real tokens.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from agency_operator.triggers.signals.app import bound_port, serve
from agency_operator.triggers.signals.kube import DEFAULT_AUDIENCE, async_client, build_kube_app
from agency_operator.triggers.signals.metrics import SignalMetrics
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.procs import wait_until

pytestmark = pytest.mark.usefixtures("agency_crds")

MAX_BYTES = 4096


class LiveEndpoint:
    """The signal app served from a background thread, talking to the testbed's API server as admin."""

    def __init__(self, testbed: Testbed) -> None:
        self._testbed = testbed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="signal-endpoint", daemon=True)
        self.registry = CollectorRegistry()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        client = self._client = async_client(kubeconfig=str(self._testbed.kubeconfig))
        app = build_kube_app(
            client, audience=DEFAULT_AUDIENCE, max_bytes=MAX_BYTES, metrics=SignalMetrics(self.registry)
        )
        self._runner = await serve(app, host="127.0.0.1", port=0)
        self.url = f"http://127.0.0.1:{bound_port(self._runner)}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.aclose()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def count(self, outcome: str) -> float:
        return self.registry.get_sample_value("agency_signals_total", {"outcome": outcome}) or 0.0


@pytest.fixture
def endpoint(testbed: Testbed) -> Iterator[LiveEndpoint]:
    live = LiveEndpoint(testbed)
    live.start()
    try:
        yield live
    finally:
        live.stop()


SCHEDULE = {
    "apiVersion": "agency.dev/v1alpha1",
    "kind": "AgentSchedule",
    "metadata": {"name": "coldchain"},
    "spec": {
        "agentRef": {"name": "quality"},
        "input": "Lot {{ signal.data.lot }} reached {{ signal.data.celsius }}C",
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


def _sender(
    kubectl: Kubectl, namespace: str, *, granted: bool, audience: str | None = DEFAULT_AUDIENCE
) -> str:
    """A service account of the namespace and a token for it (for `audience`, or the API server's own
    when None); with `granted`, RBAC to send signals."""
    kubectl("create", "serviceaccount", "sensor", "-n", namespace)
    if granted:
        _grant(kubectl, namespace)
    flags = ["--audience", audience] if audience else []
    return kubectl("create", "token", "sensor", "-n", namespace, *flags).stdout.strip()


def _grant(kubectl: Kubectl, namespace: str) -> None:
    """The Role and RoleBinding the endpoint's docs tell a sender's admin to write (`signals` is a virtual
    resource, so `kubectl create role --resource` cannot name it; a manifest can)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "signal-sender"},
        "rules": [{"apiGroups": ["agency.dev"], "resources": ["signals"], "verbs": ["create"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "sensor-sends-signals"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "signal-sender"},
        "subjects": [{"kind": "ServiceAccount", "name": "sensor", "namespace": namespace}],
    }
    items = {"apiVersion": "v1", "kind": "List", "items": [role, binding]}
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(items))


def _event(event_id: str, celsius: float) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/sensors/truck-4",
        "type": "com.example.coldchain.temperature",
        "datacontenttype": "application/json",
        "data": {"celsius": celsius, "lot": "L-889"},
    }


def _post_structured(url: str, namespace: str, token: str | None, event: dict[str, Any]) -> httpx.Response:
    headers = {"Content-Type": "application/cloudevents+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{url}/namespaces/{namespace}/signals", content=json.dumps(event), headers=headers)


def _runs(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    out = kubectl("get", "agentruns", "-n", namespace, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


@pytest.fixture
def coldchain(kubectl: Kubectl, namespace: str) -> str:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(SCHEDULE))
    return namespace


def test_a_significant_event_creates_one_run_and_redeliveries_create_nothing_new(
    endpoint: LiveEndpoint, kubectl: Kubectl, coldchain: str
) -> None:
    token = _sender(kubectl, coldchain, granted=True)
    answers = [_post_structured(endpoint.url, coldchain, token, _event("reading-1", 9.5)) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202], answers[0].text
    names = {tuple(a.json()["runs"]) for a in answers}
    runs = _runs(kubectl, coldchain)
    assert len(runs) == 1
    assert names == {(runs[0]["metadata"]["name"],)}
    run = runs[0]
    assert run["spec"]["input"] == "Lot L-889 reached 9.5C"
    assert run["spec"]["trigger"]["type"] == "Signal"
    assert run["spec"]["trigger"]["signal"]["id"] == "reading-1"
    assert run["metadata"]["labels"]["agency.dev/schedule"] == "coldchain"
    assert run["metadata"]["ownerReferences"][0]["kind"] == "AgentSchedule"
    schedule = json.loads(kubectl("get", "agentschedule", "coldchain", "-n", coldchain, "-o", "json").stdout)
    assert schedule["status"]["lastSignalTime"]


def test_an_insignificant_event_creates_no_run(
    endpoint: LiveEndpoint, kubectl: Kubectl, coldchain: str
) -> None:
    token = _sender(kubectl, coldchain, granted=True)
    response = _post_structured(endpoint.url, coldchain, token, _event("reading-2", 4.0))
    assert response.status_code == 202
    assert response.json()["results"][0]["outcome"] == "Insignificant"
    assert _runs(kubectl, coldchain) == []


def test_a_binary_mode_event_creates_a_run(endpoint: LiveEndpoint, kubectl: Kubectl, coldchain: str) -> None:
    token = _sender(kubectl, coldchain, granted=True)
    response = httpx.post(
        f"{endpoint.url}/namespaces/{coldchain}/signals",
        content=json.dumps({"celsius": 11.0, "lot": "L-42"}),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "binary-1",
            "ce-source": "/sensors/truck-7",
            "ce-type": "com.example.coldchain.temperature",
        },
    )
    assert response.status_code == 202, response.text
    (run,) = _runs(kubectl, coldchain)
    assert run["spec"]["input"] == "Lot L-42 reached 11.0C"
    assert run["spec"]["trigger"]["signal"]["source"] == "/sensors/truck-7"


def test_an_unauthenticated_sender_is_refused_with_401(
    endpoint: LiveEndpoint, kubectl: Kubectl, coldchain: str
) -> None:
    no_token = _post_structured(endpoint.url, coldchain, None, _event("r", 9.5))
    bad_token = _post_structured(endpoint.url, coldchain, "not-a-token", _event("r", 9.5))
    assert (no_token.status_code, bad_token.status_code) == (401, 401)
    assert _runs(kubectl, coldchain) == []
    assert endpoint.count("unauthenticated") == 2


def test_a_token_issued_for_another_audience_is_refused_with_401(
    endpoint: LiveEndpoint, kubectl: Kubectl, coldchain: str, testbed: Testbed
) -> None:
    api_token = _sender(kubectl, coldchain, granted=True, audience=None)
    with testbed.http(token=api_token) as api:  # the token is valid, for the API server
        assert api.get("/api").status_code == 200
    response = _post_structured(endpoint.url, coldchain, api_token, _event("r", 9.5))
    assert response.status_code == 401
    assert _runs(kubectl, coldchain) == []


def test_a_sender_without_rbac_is_refused_with_403_until_a_rolebinding_grants_create_on_signals(
    endpoint: LiveEndpoint, kubectl: Kubectl, coldchain: str
) -> None:
    token = _sender(kubectl, coldchain, granted=False)
    refused = _post_structured(endpoint.url, coldchain, token, _event("r-1", 9.5))
    assert refused.status_code == 403
    assert f"system:serviceaccount:{coldchain}:sensor" in refused.json()["message"]
    assert _runs(kubectl, coldchain) == []

    _grant(kubectl, coldchain)
    answers: list[httpx.Response] = []

    def accepted() -> bool:
        answers.append(_post_structured(endpoint.url, coldchain, token, _event("r-1", 9.5)))
        return answers[-1].status_code == 202

    wait_until(accepted, 30, "the RoleBinding to take effect")
    assert len(_runs(kubectl, coldchain)) == 1


def test_malformed_and_oversized_events_are_refused_with_400_and_413(
    endpoint: LiveEndpoint, kubectl: Kubectl, coldchain: str
) -> None:
    token = _sender(kubectl, coldchain, granted=True)
    malformed = httpx.post(
        f"{endpoint.url}/namespaces/{coldchain}/signals",
        content=b'{"specversion": "1.0", "source": "/x", "type": "t"}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents+json"},
    )
    assert malformed.status_code == 400
    assert "id" in malformed.json()["message"]
    oversized = _post_structured(
        endpoint.url,
        coldchain,
        token,
        {**_event("big", 9.5), "data": {"celsius": 9.5, "pad": "x" * MAX_BYTES}},
    )
    assert oversized.status_code == 413
    assert _runs(kubectl, coldchain) == []
    assert (endpoint.count("malformed"), endpoint.count("oversized")) == (1, 1)
