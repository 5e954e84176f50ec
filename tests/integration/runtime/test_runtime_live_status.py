"""Live status: after every step the run patches its own AgentRun status with its token (steps, usage,
trace, plan); it never writes phase or conditions, and a refused patch never stops the run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from agency_runtime.api.common import RunPhase
from agency_runtime.contract import MODEL_API_KEY
from agency_runtime.journal_kube import head_name
from agency_runtime.kube import RunObject
from agency_runtime.loop import Progress, RunResult, run_agent
from agency_runtime.process import MEMORY_DIR, run_process
from agency_runtime.runfile import RunFile, write_run_file
from agency_runtime.status_kube import KubeStatusReporter
from agency_testbed.cluster import Testbed
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from integration.runtime.run_identity import RunIdentity
from unit.runtime.runtime_support import Runner, agent

PLAN = "1. Look at the queue.\n2. Answer."


def _status(testbed: Testbed, run: RunObject) -> dict[str, Any]:
    out = testbed.kubectl("get", "agentrun", run.name, "-n", run.namespace, "-o", "json").stdout
    status: dict[str, Any] = json.loads(out).get("status") or {}
    return status


def _script(scripted_llm: ScriptedLLM, conversation: str) -> None:
    scripted_llm.script(
        conversation,
        [
            reply(tool_calls=[call("update_plan", {"plan": PLAN})], usage=(100, 10)),
            reply(tool_calls=[call("update_plan", {"plan": PLAN + "\n3. Done."})], usage=(120, 12)),
            reply("the queue is empty", usage=(150, 15)),
        ],
    )


def test_the_status_shows_each_step_as_it_happens_with_usage_trace_and_plan_but_no_phase(
    testbed: Testbed, scripted_llm: ScriptedLLM, runner: Runner, identity: RunIdentity
) -> None:
    _script(scripted_llm, "live")
    reporter = KubeStatusReporter(identity.client(), identity.run)
    seen: list[dict[str, Any]] = []

    def progress(step: Progress) -> None:
        reporter.progress(step)
        seen.append(_status(testbed, identity.run))

    ctx = runner.context(agent(scripted_llm.base_url, "live"), run_id=identity.run.uid)
    ctx.on_progress = progress
    result = run_agent(ctx)
    ctx.journal.close()
    ctx.telemetry.shutdown()

    assert result.phase is RunPhase.SUCCEEDED
    assert [s["stepCount"] for s in seen] == [1, 2]
    assert [s["usage"]["totalTokens"] for s in seen] == [110, 242]
    assert [s["plan"] for s in seen] == [PLAN, PLAN + "\n3. Done."]
    assert {s["traceId"] for s in seen} == {result.trace_id}
    assert all("phase" not in s and "conditions" not in s for s in seen)
    assert reporter.failures == 0


def test_a_refused_status_patch_is_logged_and_the_run_goes_on(
    scripted_llm: ScriptedLLM, runner: Runner, identity: RunIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    _script(scripted_llm, "refused")
    other = RunObject(identity.run.namespace, "someone-elses-run", "0000")
    reporter = KubeStatusReporter(identity.client(), other)
    ctx = runner.context(agent(scripted_llm.base_url, "refused"), run_id=identity.run.uid)
    ctx.on_progress = reporter.progress

    with caplog.at_level(logging.WARNING, logger="agency_runtime.status"):
        result = run_agent(ctx)
        reporter.report(result)
    ctx.journal.close()
    ctx.telemetry.shutdown()

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "the queue is empty")
    assert (reporter.patches, reporter.failures) == (0, 3)
    assert "cannot patch the status of AgentRun" in caplog.text
    assert "403" in caplog.text


def test_the_runtime_process_in_a_pod_journals_in_configmaps_and_patches_its_status(
    testbed: Testbed,
    scripted_llm: ScriptedLLM,
    identity: RunIdentity,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _script(scripted_llm, "pod")
    run_file = tmp_path / "run.json"
    write_run_file(RunFile(agent=agent(scripted_llm.base_url, "pod"), input="check the queue"), run_file)
    environ = {
        **identity.env(run_file, journal="kubernetes").to_env(),
        MODEL_API_KEY: "sk-test",
        MEMORY_DIR: str(tmp_path / "memory"),
    }

    code = run_process(environ)

    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["phase"], result["result"]) == ("Succeeded", "the queue is empty")
    status = _status(testbed, identity.run)
    assert (status["stepCount"], status["traceId"], status["pendingApprovals"]) == (3, result["traceId"], [])
    head = testbed.kubectl("get", "configmap", head_name(identity.run.name), "-n", identity.run.namespace)
    assert head.returncode == 0
    assert run_process(environ) == 0, "a second process finds the run finished in the journal"
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["result"] == "the queue is empty"
    assert len(scripted_llm.requests("pod")) == 3


def test_a_run_whose_role_does_not_cover_its_journal_stops_saying_what_the_role_needs(
    scripted_llm: ScriptedLLM, identity: RunIdentity, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_file = tmp_path / "run.json"
    write_run_file(RunFile(agent=agent(scripted_llm.base_url, "unused"), input="x"), run_file)
    env = identity.env(run_file, journal="kubernetes")
    elsewhere = {**env.to_env(), "AGENCY_RUN_NAME": "another-run", MEMORY_DIR: str(tmp_path / "memory")}

    code = run_process(elsewhere)

    assert code == 1
    err = capsys.readouterr().err
    assert "the run's journal cannot be kept (kubernetes): 403 Forbidden" in err
    assert "journal needs the run's Role to allow agency_runtime.journal_kube.journal_rules" in err
    assert scripted_llm.requests("unused") == []


def test_a_finished_run_shows_the_judges_verdict_and_its_lesson_in_status(
    testbed: Testbed, identity: RunIdentity
) -> None:
    reporter = KubeStatusReporter(identity.client(), identity.run)
    result = RunResult(
        phase=RunPhase.SUCCEEDED,
        reason="Completed",
        message="done",
        result="the queue is empty",
        steps=1,
        judge={
            "scored": True,
            "score": 0.75,
            "reason": "right, but " + "slow " * 400,
            "model": "openai/judge",
        },
        reflection={"note": "stored", "lesson": "Check the queue before the backlog. " * 40},
    )

    reporter.report(result)

    status = _status(testbed, identity.run)
    assert reporter.failures == 0, "the API server accepted the verdict and the lesson"
    assert status["judge"]["scored"] is True
    assert status["judge"]["score"] == 0.75
    assert status["judge"]["model"] == "openai/judge"
    assert status["judge"]["reason"].startswith("right, but slow")
    assert len(status["lesson"]) == 600
    assert status["lesson"].startswith("Check the queue before the backlog.")


def test_an_unscored_verdict_shows_why_without_a_score(testbed: Testbed, identity: RunIdentity) -> None:
    reporter = KubeStatusReporter(identity.client(), identity.run)
    verdict = {"scored": False, "reason": "unscored: the judge model failed", "model": "openai/judge"}

    reporter.report(RunResult(phase=RunPhase.FAILED, reason="ModelFailed", message="x", judge=verdict))

    status = _status(testbed, identity.run)
    assert reporter.failures == 0
    assert status["judge"] == verdict
    assert "lesson" not in status
