"""The operator SIGKILLed 20 times at random moments while a burst of 100 runs goes through it (the stub
runtime, through the local executor): every run succeeds once, no runtime is started twice, and when the
runs are done and then deleted nothing of theirs is left."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agency_operator import names
from agency_operator.executors.local import process_running
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    JsonDict,
    OperatorFactory,
    OperatorProcess,
    agent,
    api_list,
    apply,
    policy,
    run,
    run_path,
    secret,
    wait_for,
)
from e2e.chaos.report import ChaosReport, Record, seeded
from unit.runtime.runtime_endpoint import CountingEndpoint

#: Bounded by the waits below; above the default per-test timeout so that a loaded machine is not a failure.
pytestmark = pytest.mark.timeout(600)

RUNS = int(os.environ.get("AGENCY_CHAOS_OPERATOR_RUNS", "100"))
KILLS = int(os.environ.get("AGENCY_CHAOS_OPERATOR_KILLS", "20"))
WAIT = 120.0
RBAC = "/apis/rbac.authorization.k8s.io/v1"
#: A resync every 2 s instead of the fixture's 1 s: it is how a local run's end is noticed, and 100 runs
#: reconciled every second would cost more than the operator's restarts.
OPERATOR_ENV = {**STUB_ENV, "AGENCY_RESYNC_SECONDS": "2"}
#: How long a listing of the runs is reused by the conditions polled many times a second.
LIST_EVERY = 0.5


class Burst:
    """The runs of the burst as the test sees them: started (their POST arrived), released, finished."""

    def __init__(self, testbed: Testbed, namespace: str, workdir: Path, endpoint: CountingEndpoint) -> None:
        self.testbed = testbed
        self.namespace = namespace
        self.endpoint = endpoint
        items = api_list(testbed, run_path(namespace))
        self.uids = {item["metadata"]["name"]: item["metadata"]["uid"] for item in items}
        self.folders = {name: workdir / namespace / f"{name}-{uid}" for name, uid in self.uids.items()}
        self.released: set[str] = set()
        self._listed: tuple[float, int] = (0.0, 0)

    def runs(self) -> list[JsonDict]:
        return api_list(self.testbed, run_path(self.namespace))

    def succeeded(self) -> int:
        """How many runs are Succeeded (listed at most every LIST_EVERY seconds)."""
        at, count = self._listed
        if time.monotonic() - at >= LIST_EVERY:
            count = sum((r.get("status") or {}).get("phase") == "Succeeded" for r in self.runs())
            self._listed = (time.monotonic(), count)
        return count

    def started(self) -> int:
        return len({effect.split()[2] for effect in self.endpoint.effects})

    def release(self, rng: random.Random, count: int) -> None:
        """Let `count` started runs (chosen at random) finish: their stub sees its `release` file."""
        waiting = sorted(n for n, f in self.folders.items() if n not in self.released and f.exists())
        for name in rng.sample(waiting, min(count, len(waiting))):
            (self.folders[name] / "release").touch()
            self.released.add(name)

    def release_all(self) -> None:
        for name, folder in self.folders.items():
            if name not in self.released and folder.exists():
                (folder / "release").touch()
                self.released.add(name)

    def pids(self) -> list[int]:
        folders = [f for f in self.folders.values() if f.exists()]
        return [int(p.read_text() or "0") for f in folders for p in f.glob("pid*")]

    def extra_starts(self) -> dict[str, int]:
        starts = {n: len((f / "starts.log").read_text().split()) for n, f in self.folders.items()}
        return {n: count - 1 for n, count in starts.items() if count != 1}

    def owned(self, *, identity_only: bool) -> dict[str, int]:
        """What is labelled with one of the burst's runs, by kind; `identity_only`: what revoking removes."""
        ns = self.namespace
        paths = {
            "ServiceAccount": f"/api/v1/namespaces/{ns}/serviceaccounts",
            "Role": f"{RBAC}/namespaces/{ns}/roles",
            "RoleBinding": f"{RBAC}/rolebindings",
        }
        if not identity_only:
            paths |= {
                "NetworkPolicy": f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
                "Pod": f"/api/v1/namespaces/{ns}/pods",
                "ConfigMap": f"/api/v1/namespaces/{ns}/configmaps",
            }
        uids = set(self.uids.values())
        found = {
            kind: sum(
                i["metadata"]["labels"][names.RUN_UID_LABEL] in uids
                for i in api_list(self.testbed, path, names.RUN_UID_LABEL)
            )
            for kind, path in paths.items()
        }
        found["process"] = sum(process_running(pid) for pid in self.pids())
        if not identity_only:
            found["run folder"] = sum(f.exists() for f in self.folders.values())
        return {kind: count for kind, count in found.items() if count}


def _moment(rng: random.Random, burst: Burst) -> tuple[str, Callable[[], bool]]:
    """A random moment to kill the operator at, as a condition on observed progress (or a short delay)."""
    kind = rng.choice(["started", "finished", "delay"])
    if kind == "started":
        target = min(RUNS, burst.started() + rng.randint(1, 8))
        return f"{target} runs started", lambda: burst.started() >= target
    if kind == "finished":
        target = min(len(burst.released), burst.succeeded() + rng.randint(1, 4))
        return f"{target} runs succeeded", lambda: burst.succeeded() >= target
    until = time.monotonic() + rng.uniform(0.0, 1.5)
    return "a short delay", lambda: time.monotonic() >= until


def test_an_operator_killed_at_random_during_a_burst_of_runs_runs_each_once_and_leaves_nothing_behind(
    operator: OperatorFactory,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    chaos_report: Record,
) -> None:
    chosen, rng = seeded()
    started = time.monotonic()
    with CountingEndpoint() as endpoint:
        the_policy = policy(namespace, identity={"clusterRoles": [{"name": "view"}]})
        apply(kubectl, secret(namespace), the_policy, agent(namespace))
        ask = {"wait": True, "post": f"{endpoint.url}/effect"}
        apply(kubectl, *[run(namespace, f"burst-{i:03d}", ask=ask) for i in range(RUNS)])
        burst = Burst(testbed, namespace, operator.workdir, endpoint)
        process: OperatorProcess = operator.start(executor="local", env=OPERATOR_ENV)
        moments = []
        for _ in range(KILLS):
            what, reached = _moment(rng, burst)
            wait_for(reached, WAIT, f"{what} (seed {chosen})", process.log_tail)
            assert process.alive(), f"the operator crashed (seed {chosen}):{process.log_tail()}"
            process.kill()
            moments.append(what)
            burst.release(rng, rng.randint(2, 8))
            process = operator.start(executor="local", env=OPERATOR_ENV)

        def all_succeeded() -> bool:
            burst.release_all()
            return burst.succeeded() == RUNS

        wait_for(all_succeeded, WAIT, f"all {RUNS} runs to succeed (seed {chosen})", process.log_tail)
        completed = burst.succeeded()
        wait_for(lambda: not burst.owned(identity_only=True), 30, "the finished runs' identities to go")
        left_after_revocation = burst.owned(identity_only=True)
        extra_starts = burst.extra_starts()
        kubectl("delete", "agentruns", "--all", "-n", namespace, "--wait=false")
        wait_for(lambda: not burst.runs(), WAIT, "the runs to be deleted")
        wait_for(lambda: not burst.owned(identity_only=False), WAIT, "everything the runs owned to be gone")
        left_after_deletion = burst.owned(identity_only=False)
        operator_alive = process.alive()
        effects = Counter(effect.split()[2] for effect in endpoint.effects)

    report = ChaosReport(
        suite="operator SIGKILL",
        seed=chosen,
        runs=RUNS,
        completed=completed,
        kills=len(moments),
        steps_lost=RUNS - len(effects),
        duplicate_side_effects=sum(count - 1 for count in effects.values()),
        orphans=sum(left_after_revocation.values()) + sum(left_after_deletion.values()),
        wall_seconds=time.monotonic() - started,
    )
    chaos_report(report)
    context = f"seed {chosen}, kills at {moments}"
    assert (report.completed, report.kills) == (RUNS, KILLS), context
    twice = {uid: count for uid, count in effects.items() if count > 1}
    assert report.zeros() == dict.fromkeys(report.zeros(), 0), (
        f"{context}; left after revocation {left_after_revocation}, after deletion {left_after_deletion}; "
        f"effects more than once {twice}, runtimes started again {extra_starts}"
    )
    assert not extra_starts, f"{context}: runtimes started again {extra_starts}"
    assert operator_alive, f"the last operator died ({context}):{process.log_tail()}"
