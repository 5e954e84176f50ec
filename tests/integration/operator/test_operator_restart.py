"""A restarted operator resumes in-flight runs of the local executor without starting them again."""

from __future__ import annotations

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
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


def test_operator_killed_while_a_local_run_runs_follows_it_to_the_end_after_restart(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace, ask={"wait": True}))
    first = operator.start(executor="local", env=STUB_ENV)
    wait_for_phase(testbed, namespace, "r1", "Running")
    first.kill()

    operator.start(executor="local", env=STUB_ENV)
    uid = api_get(testbed, run_path(namespace, "r1"))["metadata"]["uid"]  # type: ignore[index]
    folder = operator.workdir / namespace / f"r1-{uid}"
    (folder / "release").touch()
    status = wait_for_phase(testbed, namespace, "r1", "Succeeded")
    assert status["stepCount"] == 1
    assert len((folder / "starts.log").read_text().split()) == 1, "the runtime was started once"
    wait_for(
        lambda: api_get(testbed, f"/api/v1/namespaces/{namespace}/serviceaccounts/agency-run-r1") is None,
        30,
        "the run's ServiceAccount to be deleted",
    )
