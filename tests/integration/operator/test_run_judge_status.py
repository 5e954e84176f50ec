"""What a finished run's judge and reflection concluded is in its AgentRun status, written by the operator
from the runtime's result (so it is there even when the run could not patch its own status)."""

from __future__ import annotations

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    OperatorFactory,
    agent,
    apply,
    policy,
    run,
    secret,
    wait_for_phase,
)


def test_a_finished_runs_judge_score_and_lesson_are_in_its_status(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    verdict = {"scored": True, "score": 0.75, "reason": "Met most of the rubric.", "model": "openai/judge"}
    reflection = {"note": "stored", "lesson": "Check the ledger before paying twice."}
    apply(
        kubectl,
        secret(namespace),
        policy(namespace),
        agent(namespace),
        run(namespace, ask={"judge": verdict, "reflection": reflection}),
    )
    operator.start(executor="local", env=STUB_ENV)

    status = wait_for_phase(testbed, namespace, "r1", "Succeeded")

    assert status["judge"] == verdict
    assert status["lesson"] == "Check the ledger before paying twice."
