"""An Agent's status reconcile: which reads it shares with the runs' admissions, and what it counts."""

from __future__ import annotations

import copy
import time
from typing import Any, cast

from operator_objects import NAMESPACE

from agency_operator.agents import Since, reconcile_agent
from agency_operator.fresh import FreshReads
from agency_operator.kube import JsonDict, Kube
from agency_operator.seen import Seen

AGENT = f"/apis/agency.dev/v1alpha1/namespaces/{NAMESPACE}/agents/helper"
POLICIES = f"/apis/agency.dev/v1alpha1/namespaces/{NAMESPACE}/agentpolicies"
SECRET = f"/api/v1/namespaces/{NAMESPACE}/secrets/model-key"
RUNS = f"/apis/agency.dev/v1alpha1/namespaces/{NAMESPACE}/agentruns"
EVENTS = f"/api/v1/namespaces/{NAMESPACE}/events"


class RecordingKube:
    """The API calls an Agent reconcile makes, answered from a dict of objects; each call is recorded."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str]] = []

    def get_or_none(self, path: str) -> JsonDict | None:
        self.calls.append(("GET", path))
        found = self.objects.get(path)
        return copy.deepcopy(found) if found is not None else None

    def list(self, path: str, label_selector: str | None = None, *, field_selector: str | None = None) -> Any:
        self.calls.append(("LIST", path))
        return copy.deepcopy(self.objects.get(path, []))

    def patch_status(self, path: str, status: JsonDict) -> JsonDict:
        self.calls.append(("PATCH", path))
        body = self.objects[path]
        merged = {**(body.get("status") or {}), **status}  # a merge patch: null removes the field
        body["status"] = {key: value for key, value in merged.items() if value is not None}
        body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(body)

    def create(self, path: str, body: JsonDict) -> JsonDict:
        self.calls.append(("POST", path))
        return body


def _objects() -> dict[str, Any]:
    agent = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "helper", "namespace": NAMESPACE, "uid": "a1", "resourceVersion": "1"},
        "spec": {
            "model": {
                "name": "openai/triage",
                "credentialsSecretRef": {"name": "model-key", "key": "apiKey"},
            },
            "instructions": "Help.",
        },
    }
    policy = {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentPolicy",
        "metadata": {"name": "default", "namespace": NAMESPACE},
        "spec": {"models": {"allowed": ["openai/*"]}},
    }
    secret = {"metadata": {"name": "model-key"}, "data": {"apiKey": "c2VjcmV0"}}
    run = {
        "metadata": {"name": "r1", "namespace": NAMESPACE, "uid": "u1"},
        "spec": {"agentRef": {"name": "helper"}},
        "status": {"phase": "Running", "startTime": "2026-12-04T10:00:00Z"},
    }
    return {AGENT: agent, POLICIES: [policy], SECRET: secret, RUNS: [run]}


def test_an_agent_reconcile_shares_what_runs_read_since_its_cause_but_reads_itself_after_its_write() -> None:
    objects, fresh, seen = _objects(), FreshReads(), Seen()
    kube = RecordingKube(objects)
    cause = time.monotonic()
    for path in (AGENT, SECRET):  # a run's admission read these after the run event that queued the Agent
        fresh.get(path, cause, lambda p=path: kube.get_or_none(p))
    fresh.get(POLICIES, cause, lambda: kube.list(POLICIES))
    kube.calls.clear()

    written = reconcile_agent(cast(Kube, kube), seen, NAMESPACE, "helper", fresh, Since(cause, cause))
    assert written is not None
    # Its runs listed once (the watch keeps them from then on), the reads shared, its status and the Event.
    assert kube.calls == [("LIST", RUNS), ("PATCH", AGENT), ("POST", EVENTS)]
    status = written["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], status["runsInFlight"], status["lastRun"]["name"]) == ("True", 1, "r1")

    kube.calls.clear()
    after_write = time.monotonic()  # the next reconcile may not use the Agent as read before that write
    again = reconcile_agent(cast(Kube, kube), seen, NAMESPACE, "helper", fresh, Since(after_write, cause))
    assert again is None  # nothing changed, nothing written
    assert kube.calls == [("GET", AGENT)]  # the Agent afresh; policies and Secret shared; runs watched


def test_an_agent_reconcile_without_shared_reads_reads_everything_itself() -> None:
    kube, seen = RecordingKube(_objects()), Seen()
    reconcile_agent(cast(Kube, kube), seen, NAMESPACE, "helper")
    reads = {("GET", AGENT), ("GET", SECRET), ("LIST", POLICIES), ("LIST", RUNS)}
    assert set(kube.calls) == reads | {("PATCH", AGENT), ("POST", EVENTS)}
