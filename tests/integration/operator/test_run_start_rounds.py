"""A run's start in three round trips: every read at once, every object that needs no other, then the Pod
beside the binding to the run's own Role (which needs that Role).

The reconcile is called in-process against the real API server (no operator process), logged in as the
operator is in a cluster (its ServiceAccount with only its ClusterRole: an admin passes RBAC checks the
operator must pass, and hid a binding sent before its Role for as long as a resync), with a request
hook on its own client that holds each request of a round until the whole round is in flight: a request
sent one after another instead breaks the barrier and fails the reconcile. Then the shared reads of a
burst (`fresh.py`): what runs may share, and what they must read again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agency_operator import runs
from agency_operator.executors.pod import PodExecutor
from agency_operator.kube import Kube
from agency_operator.metrics import START_STAGES, Metrics
from agency_operator.settings import Settings
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import agent, api_get, apply, policy, run, run_path, secret
from agency_testbed.operator_login import operator_login

pytestmark = pytest.mark.usefixtures("agency_crds")

READS = 4  # the run, its Agent, the namespace's policies, the model Secret
OBJECTS = 4  # ServiceAccount, Role, NetworkPolicy, run file
LAST = 2  # the Pod, the RoleBinding of the run's own Role


def _resource(path: str) -> str:
    """`agents` of /apis/agency.dev/v1alpha1/namespaces/ns/agents/helper (or of the collection)."""
    parts = path.split("/")
    return parts[parts.index("namespaces") + 2]


class Rounds:
    """Holds the requests of each expected round at a barrier until all of them are in flight."""

    def __init__(self, sizes: list[int]) -> None:
        self.barriers = [threading.Barrier(size, timeout=15) for size in sizes]
        self.sizes = sizes
        self.sent: list[tuple[str, str]] = []
        self.guard = threading.Lock()

    def hook(self, method: str, path: str) -> None:
        with self.guard:
            index = len(self.sent)
            self.sent.append((method, _resource(path)))
        for size, barrier in zip(self.sizes, self.barriers, strict=True):
            if index < size:
                barrier.wait()
                return
            index -= size

    def round(self, number: int) -> set[tuple[str, str]]:
        start = sum(self.sizes[:number])
        return set(self.sent[start : start + self.sizes[number]])


@pytest.fixture
def operator_kubeconfig(testbed: Testbed, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """The operator's production login: its ServiceAccount, bound to its ClusterRole only."""
    with operator_login(testbed, namespace, tmp_path) as path:
        yield path


@pytest.fixture
def kube(operator_kubeconfig: Path) -> Iterator[Kube]:
    client = Kube.from_environment(kubeconfig=operator_kubeconfig)
    yield client
    client.close()


def _context(kube: Kube) -> runs.Context:
    return runs.Context(
        kube=kube,
        settings=Settings(),
        executor=PodExecutor(kube, Settings()),
        metrics=Metrics(CollectorRegistry()),
    )


def _body(testbed: Testbed, namespace: str, name: str = "r1") -> dict[str, Any]:
    found = api_get(testbed, run_path(namespace, name))
    assert found is not None
    return found


def test_a_run_seen_on_its_watch_starts_in_three_round_trips(
    kubectl: Kubectl, testbed: Testbed, namespace: str, operator_kubeconfig: Path
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace))
    rounds = Rounds([READS, OBJECTS, LAST])
    kube = Kube.from_environment(kubeconfig=operator_kubeconfig, on_request=rounds.hook)
    ctx = _context(kube)
    ctx.seen.agent_seen(agent(namespace))  # as the operator's watches would have shown them
    ctx.seen.run_seen(_body(testbed, namespace))

    assert runs.reconcile_run(ctx, namespace, "r1") is None

    assert rounds.round(0) == {
        ("GET", "agentruns"),
        ("GET", "agents"),
        ("GET", "agentpolicies"),
        ("GET", "secrets"),
    }
    assert rounds.round(1) == {
        ("POST", "serviceaccounts"),
        ("POST", "roles"),
        ("POST", "networkpolicies"),
        ("POST", "configmaps"),
    }
    assert rounds.round(2) == {("POST", "pods"), ("POST", "rolebindings")}
    binding = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/agency-run-r1"
    assert api_get(testbed, binding) is not None
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/r1") is not None
    kube.close()
    assert _body(testbed, namespace)["status"]["startTime"]


def test_stale_hints_never_decide_a_runs_admission(
    kubectl: Kubectl, testbed: Testbed, namespace: str, kube: Kube
) -> None:
    # The watch last showed an Agent taking its key from Secret old-key, which exists; the Agent now
    # names model-key, which does not. And the run hint is of another run of the same name and agent.
    stale_agent = agent(namespace)
    stale_agent["spec"]["model"]["credentialsSecretRef"]["name"] = "old-key"
    apply(kubectl, secret(namespace, name="old-key"), policy(namespace), agent(namespace), run(namespace))
    ctx = _context(kube)
    ctx.seen.agent_seen(stale_agent)
    replaced = run(namespace, agent_name="ghost")
    replaced["metadata"]["uid"] = "a-run-deleted-meanwhile"
    ctx.seen.run_seen(replaced)

    refusal = runs.reconcile_run(ctx, namespace, "r1")

    assert refusal is not None
    assert refusal.reason == "SecretNotFound"
    assert "Agent helper takes its model key from Secret model-key" in refusal.message
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is None
    credentials = [
        c for c in _body(testbed, namespace)["status"]["conditions"] if c["type"] == "CredentialsReady"
    ]
    assert [(c["status"], c["reason"]) for c in credentials] == [("False", "SecretNotFound")]


class Requests:
    """Records (method, resource) of every request a client sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def hook(self, method: str, path: str) -> None:
        self.sent.append((method, _resource(path)))

    def reads(self) -> list[tuple[str, str]]:
        """What was read since the last call, in order."""
        taken, self.sent = self.sent, []
        return sorted(r for r in taken if r[0] == "GET")


def _recorded(operator_kubeconfig: Path) -> tuple[Requests, Kube]:
    requests = Requests()
    return requests, Kube.from_environment(kubeconfig=operator_kubeconfig, on_request=requests.hook)


def test_runs_seen_before_a_read_was_sent_share_it_and_all_start(
    kubectl: Kubectl, testbed: Testbed, namespace: str, operator_kubeconfig: Path
) -> None:
    apply(
        kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace), run(namespace, "r2")
    )
    requests, kube = _recorded(operator_kubeconfig)
    ctx = _context(kube)
    ctx.seen.agent_seen(agent(namespace))
    ctx.seen.run_seen(_body(testbed, namespace))  # both seen before either is reconciled, as in a burst
    ctx.seen.run_seen(_body(testbed, namespace, "r2"))

    assert runs.reconcile_run(ctx, namespace, "r1") is None
    assert requests.reads() == sorted(
        [("GET", "agentpolicies"), ("GET", "agentruns"), ("GET", "agents"), ("GET", "secrets")]
    )
    assert runs.reconcile_run(ctx, namespace, "r2") is None
    assert requests.reads() == [("GET", "agentruns")]  # its Agent, policies and Secret: r1's reads
    kube.close()
    for name in ("r1", "r2"):
        assert _body(testbed, namespace, name)["status"]["startTime"]
        assert api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/{name}") is not None


def test_a_policy_changed_after_a_shared_read_governs_the_runs_created_after_the_change(
    kubectl: Kubectl, testbed: Testbed, namespace: str, kube: Kube
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace))
    ctx = _context(kube)
    ctx.seen.agent_seen(agent(namespace))
    ctx.seen.run_seen(_body(testbed, namespace))
    assert runs.reconcile_run(ctx, namespace, "r1") is None  # its reads are now there to share

    apply(kubectl, policy(namespace, models={"allowed": ["anthropic/*"]}), run(namespace, "r2"))
    ctx.seen.run_seen(_body(testbed, namespace, "r2"))
    refusal = runs.reconcile_run(ctx, namespace, "r2")

    assert refusal is not None
    assert refusal.reason == "ModelNotAllowed"
    assert api_get(testbed, f"/api/v1/namespaces/{namespace}/pods/r2") is None


def test_a_refused_run_reads_live_again_and_starts_once_its_secret_exists(
    kubectl: Kubectl, testbed: Testbed, namespace: str, kube: Kube
) -> None:
    apply(kubectl, policy(namespace), agent(namespace), run(namespace))
    ctx = _context(kube)
    ctx.seen.agent_seen(agent(namespace))
    ctx.seen.run_seen(_body(testbed, namespace))
    refusal = runs.reconcile_run(ctx, namespace, "r1")
    assert refusal is not None
    assert refusal.reason == "SecretNotFound"

    apply(kubectl, secret(namespace))
    ctx.seen.run_seen(_body(testbed, namespace))  # the watch shows the refusal the operator wrote

    assert runs.reconcile_run(ctx, namespace, "r1") is None  # the Secret's read of a moment ago said none
    assert _body(testbed, namespace)["status"]["startTime"]


STAGE_METRIC = "agency_run_start_stage_seconds"


def _stage_counts(ctx: runs.Context) -> dict[str, float]:
    """How many starts `agency_run_start_stage_seconds` observed, by stage (those never observed left out)."""
    counts = {}
    for stage in START_STAGES:
        value = ctx.metrics.registry.get_sample_value(f"{STAGE_METRIC}_count", {"stage": stage})
        if value:
            counts[stage] = value
    return counts


def test_a_runs_start_is_timed_by_stage_once_it_started_and_a_wait_for_credentials_is_not_queueing(
    kubectl: Kubectl, testbed: Testbed, namespace: str, kube: Kube
) -> None:
    apply(kubectl, policy(namespace), agent(namespace), run(namespace), run(namespace, "r2"))
    ctx = _context(kube)
    ctx.seen.agent_seen(agent(namespace))
    ctx.seen.run_seen(_body(testbed, namespace))
    assert runs.reconcile_run(ctx, namespace, "r1") is not None  # no Secret yet: it waits
    assert _stage_counts(ctx) == {}

    apply(kubectl, secret(namespace))
    ctx.seen.run_seen(_body(testbed, namespace))  # the watch shows the refusal the operator wrote
    assert runs.reconcile_run(ctx, namespace, "r1") is None
    assert _stage_counts(ctx) == {"admission": 1, "identity": 1, "process": 1}  # it waited, not queued

    ctx.seen.run_seen(_body(testbed, namespace, "r2"))  # started by its first reconcile: queued counts
    assert runs.reconcile_run(ctx, namespace, "r2") is None
    assert runs.reconcile_run(ctx, namespace, "r1") is None  # started already: nothing is timed again
    assert _stage_counts(ctx) == {"queued": 1, "admission": 2, "identity": 2, "process": 2}
    took = ctx.metrics.registry.get_sample_value(f"{STAGE_METRIC}_sum", {"stage": "identity"})
    assert took is not None
    assert took > 0  # a round of four writes to a real API server
