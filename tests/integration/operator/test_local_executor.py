"""The `local` executor: the process it starts, what it is given, and what happens when the run goes."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from agency_operator.executors.local import process_running
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


def _folder(operator: OperatorFactory, testbed: Testbed, namespace: str, name: str = "r1") -> Path:
    uid = api_get(testbed, run_path(namespace, name))["metadata"]["uid"]  # type: ignore[index]
    return operator.workdir / namespace / f"{name}-{uid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_process_gets_the_contract_env_the_key_and_a_token_but_no_secret_in_files(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace, data={"apiKey": "sk-local-secret-value"}),
        policy(namespace, budgets={"perRun": {"maxTokens": 5000}}),
        agent(namespace),
        run(namespace, budget={"maxTokens": 300}),
    )
    operator.start(executor="local", env={**STUB_ENV, "AGENCY_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    wait_for_phase(testbed, namespace, "r1", "Succeeded")
    folder = _folder(operator, testbed, namespace)
    env = json.loads((folder / "env.json").read_text())
    assert env["AGENCY_MODEL_API_KEY"] == "sk-local-secret-value"
    assert env["AGENCY_BUDGET_MAX_TOKENS"] == "300"
    assert env["AGENCY_KUBE_API"] == testbed.server
    assert Path(env["AGENCY_KUBE_TOKEN_FILE"]) == folder / "token"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert (
        env["OTEL_RESOURCE_ATTRIBUTES"] == f"agency.agent=helper,agency.run=r1,k8s.namespace.name={namespace}"
    )
    assert not {k for k in env if k.startswith("KUBE") or k == "AGENCY_TEST_CRASH_AFTER"}
    for written in folder.iterdir():
        if written.name != "env.json":  # the stub's own record of its environment
            assert "sk-local-secret-value" not in written.read_text(errors="replace"), written
    assert "sk-local-secret-value" not in json.dumps(api_get(testbed, run_path(namespace, "r1")))
    assert "sk-local-secret-value" not in operator.started[0].log.read_text()


def test_deleting_a_running_local_run_stops_its_process(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace), run(namespace, ask={"wait": True}))
    operator.start(executor="local", env=STUB_ENV)
    wait_for_phase(testbed, namespace, "r1", "Running")
    folder = _folder(operator, testbed, namespace)
    pid = int((folder / "pid").read_text())
    assert _alive(pid)
    kubectl("delete", "agentrun", "r1", "-n", namespace)
    wait_for(lambda: not _alive(pid), 30, "the run's process to be stopped")
    wait_for(lambda: not folder.exists(), 10, "the run's files (its token among them) to be removed")


def test_operator_metrics_count_runs_by_phase_and_outcome_with_usage_durations_and_judge_scores(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    usage = {"inputTokens": 70, "outputTokens": 7, "costUSD": 0.25}
    judged = {"usage": usage, "judge": {"score": 0.75, "reason": "Correct and brief.", "model": "judge"}}
    rolled_back = {
        "phase": "Failed",
        "reason": "RolledBack",
        "message": "consumers-healthy failed",
        "usage": {"inputTokens": 30, "outputTokens": 3, "costUSD": 0.5},
    }
    apply(
        kubectl,
        secret(namespace),
        policy(namespace),
        agent(namespace),
        run(namespace, ask=judged),
        run(namespace, "r2", ask=rolled_back),
    )
    op = operator.start(executor="local", env=STUB_ENV)
    wait_for_phase(testbed, namespace, "r1", "Succeeded")
    wait_for_phase(testbed, namespace, "r2", "Failed")
    labels = f'agent="helper",namespace="{namespace}"'

    def metrics_show_the_runs() -> bool:
        text = op.metrics()
        return all(
            f'agency_run_phase_transitions_total{{{labels},phase="{phase}"}} 1.0' in text
            for phase in ("Succeeded", "Failed")
        )

    wait_for(metrics_show_the_runs, 10, "the Succeeded and the Failed run in the metrics")
    text = op.metrics()
    # The KPIs of how runs end: by phase and reason, how long after their creation, and how they were judged.
    assert f'agency_run_outcomes_total{{{labels},phase="Succeeded",reason="Completed"}} 1.0' in text
    assert f'agency_run_outcomes_total{{{labels},phase="Failed",reason="RolledBack"}} 1.0' in text
    for phase in ("Succeeded", "Failed"):
        assert f'agency_run_duration_seconds_count{{{labels},phase="{phase}"}} 1.0' in text
    r1 = api_get(testbed, run_path(namespace, "r1"))
    lasted = _seconds_between(r1["metadata"]["creationTimestamp"], r1["status"]["completionTime"])
    assert f'agency_run_duration_seconds_sum{{{labels},phase="Succeeded"}} {lasted}' in text
    assert f"agency_run_judge_score_count{{{labels}}} 1.0" in text
    assert f"agency_run_judge_score_sum{{{labels}}} 0.75" in text
    for direction, tokens in (("input", 100.0), ("output", 10.0)):  # both runs' usage, summed
        series = (
            f'agency_model_tokens_total{{agent="helper",direction="{direction}",namespace="{namespace}"}}'
        )
        assert f"{series} {tokens}" in text
    assert f"agency_model_cost_usd_total{{{labels}}} 0.75" in text
    assert 'agency_reconcile_duration_seconds_count{kind="AgentRun"}' in text
    for stage in ("admission", "identity", "process"):  # each start, timed once (the process: spawned)
        assert f'agency_run_start_stage_seconds_count{{stage="{stage}"}} 2.0' in text
    wait_for(  # the run is done: its work queue drains (the gauge is there and follows it)
        lambda: "\nagency_reconcile_queue_depth 0.0" in op.metrics(), 10, "an empty reconcile queue"
    )
    lines = [line for line in op.log.read_text().splitlines() if line.strip()]
    assert lines
    assert all(isinstance(json.loads(line), dict) for line in lines)


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_a_run_deleted_while_no_operator_ran_is_stopped_and_removed_at_the_next_start(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(
        kubectl,
        secret(namespace),
        policy(namespace),
        agent(namespace),
        run(namespace, ask={"wait": True}),
        run(namespace, "kept", ask={"wait": True}),
    )
    first = operator.start(executor="local", env=STUB_ENV)
    for name in ("r1", "kept"):
        wait_for_phase(testbed, namespace, name, "Running")
    gone, kept = _folder(operator, testbed, namespace), _folder(operator, testbed, namespace, "kept")
    gone_pid, kept_pid = int((gone / "pid").read_text()), int((kept / "pid").read_text())
    first.kill()
    kubectl("delete", "agentrun", "r1", "-n", namespace)  # no operator sees it go

    operator.start(executor="local", env=STUB_ENV)

    wait_for(lambda: not process_running(gone_pid), 30, "the deleted run's process to be stopped")
    wait_for(lambda: not gone.exists(), 10, "the deleted run's files (its token among them) to be removed")
    assert process_running(kept_pid), "a run that still exists keeps its process"
    (kept / "release").touch()
    wait_for_phase(testbed, namespace, "kept", "Succeeded")
