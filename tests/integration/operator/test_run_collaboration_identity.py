"""What a run's identity lets it do to collaborate: delegate (its own children only), read those children
and nothing else, discover agents, and publish signals with a second token for the endpoint's audience."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    JsonDict,
    OperatorFactory,
    agent,
    api_get,
    apply,
    policy,
    run,
    run_path,
    secret,
    wait_for,
    wait_for_phase,
)
from agency_testbed.procs import free_port


@dataclass
class Parent:
    namespace: str
    uid: str
    folder: Path
    token: str
    signal_port: int


@pytest.fixture
def parent(operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str) -> Parent:
    """Run r1 held running (stub runtime), with the operator serving signals; r2 is someone else's run."""
    port = free_port()
    apply(
        kubectl,
        secret(namespace),
        policy(namespace),
        agent(namespace),
        run(namespace, "r1", ask={"wait": True}),
        run(namespace, "r2", ask={"wait": True}),
    )
    operator.start(executor="local", env={**STUB_ENV, "AGENCY_SIGNALS_PORT": str(port)})
    wait_for_phase(testbed, namespace, "r1", "Running")
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    folder = operator.workdir / namespace / f"r1-{uid}"
    wait_for(lambda: (folder / "env.json").exists(), 30, "the stub runtime to record its environment")
    return Parent(namespace, uid, folder, (folder / "token").read_text(), port)


def _child(parent: Parent, name: str, **changes: Any) -> JsonDict:
    body: JsonDict = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {
            "name": name,
            "namespace": parent.namespace,
            "ownerReferences": [
                {"apiVersion": "agency.dev/v1alpha1", "kind": "AgentRun", "name": "r1", "uid": parent.uid}
            ],
        },
        "spec": {
            "agentRef": {"name": "helper"},
            "input": json.dumps({"phase": "Succeeded"}),
            "parentRunRef": {"name": "r1"},
            "trigger": {"type": "Delegation"},
        },
    }
    body["spec"].update(changes)
    return body


def test_a_run_creates_its_own_child_and_then_reads_it_but_no_other_run(
    testbed: Testbed, parent: Parent
) -> None:
    ns = parent.namespace
    with testbed.http(token=parent.token) as http:
        created = http.post(run_path(ns), json=_child(parent, "r1-d-1"))
        assert created.status_code == 201, created.text
        wait_for(
            lambda: http.get(run_path(ns, "r1-d-1")).status_code == 200,
            30,
            "the operator to let the parent read its child",
        )
        assert http.get(run_path(ns, "r2")).status_code == 403
        assert http.get(run_path(ns)).status_code == 403


def test_a_run_cannot_create_a_run_that_is_not_its_child(testbed: Testbed, parent: Parent) -> None:
    ns = parent.namespace
    with testbed.http(token=parent.token) as http:
        foreign = http.post(run_path(ns), json=_child(parent, "r1-d-2", parentRunRef={"name": "r2"}))
        manual = http.post(run_path(ns), json=_child(parent, "r1-d-3", trigger={"type": "Manual"}))
        orphan = _child(parent, "r1-d-4")
        del orphan["metadata"]["ownerReferences"]
        unowned = http.post(run_path(ns), json=orphan)
    assert [foreign.status_code, manual.status_code, unowned.status_code] == [403, 403, 403]
    assert "only as its own children" in foreign.json()["message"]
    assert "must be owned by it" in unowned.json()["message"]


def test_a_run_lists_agents_to_discover_them(testbed: Testbed, parent: Parent) -> None:
    with testbed.http(token=parent.token) as http:
        answer = http.get(f"/apis/agency.dev/v1alpha1/namespaces/{parent.namespace}/agents")
    assert answer.status_code == 200
    assert [a["metadata"]["name"] for a in answer.json()["items"]] == ["helper"]


def test_a_run_gets_the_signal_url_and_a_token_the_signal_endpoint_accepts(
    kubectl: Kubectl, testbed: Testbed, parent: Parent
) -> None:
    env = json.loads((parent.folder / "env.json").read_text())
    assert env["AGENCY_SIGNAL_URL"] == (
        f"http://127.0.0.1:{parent.signal_port}/namespaces/{{namespace}}/signals"
    )
    token = Path(env["AGENCY_SIGNAL_TOKEN_FILE"]).read_text()
    event = {"specversion": "1.0", "id": "e1", "source": "/test", "type": "com.example.nobody.listens"}
    url = env["AGENCY_SIGNAL_URL"].replace("{namespace}", parent.namespace)
    headers = {"Content-Type": "application/cloudevents+json"}
    accepted = httpx.post(url, json=event, headers={**headers, "Authorization": f"Bearer {token}"})
    assert accepted.status_code == 202, accepted.text
    # The run's API token is for the API server's audience: the endpoint refuses it, and the signal
    # token is refused by the API server.
    wrong = httpx.post(url, json=event, headers={**headers, "Authorization": f"Bearer {parent.token}"})
    assert wrong.status_code == 401
    with testbed.http(token=token) as http:
        assert http.get(run_path(parent.namespace, "r1")).status_code == 401
