"""Compaction across processes: a runtime killed after compacting resumes with the same summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agency_runtime.compaction import SUMMARY_PREFIX
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, delay, reply
from e2e.runtime.runtime_process import RunSetup, RuntimeProcess
from unit.runtime.runtime_support import agent

Start = Callable[[dict[str, str]], RuntimeProcess]
FILLER = "lorem " * 1500


def test_a_runtime_killed_after_compacting_resumes_without_asking_for_the_summary_again(
    scripted_llm: ScriptedLLM, tmp_path: Path, start_runtime: Start
) -> None:
    last = reply("all done")
    scripted_llm.script(
        "compacting",
        [
            reply(f"STEP-ONE-MARKER {FILLER}", tool_calls=[call("update_plan", {"plan": "p1"})]),
            reply(f"STEP-TWO-MARKER {FILLER}", tool_calls=[call("update_plan", {"plan": "p2"})]),
            reply("SUMMARY: planned p1 then p2"),
            delay(60, last),  # the process dies while waiting for step 3
            last,
        ],
    )
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "compacting"), "THE-TASK")
    env = {**run.env(), "AGENCY_COMPACTION_TOKENS": "3000", "AGENCY_COMPACTION_KEEP_STEPS": "1"}

    first = start_runtime(env)
    scripted_llm.wait_for_requests("compacting", 4, timeout=60)
    first.kill()
    result = start_runtime(env).result()

    assert (result["phase"], result["result"]) == ("Succeeded", "all done")
    requests = scripted_llm.requests("compacting")
    assert len(requests) == 5, "only step 3 is asked again, not the summary"
    for step_three in requests[3:]:
        texts = [str(m.get("content") or "") for m in step_three["messages"]]
        assert texts[2] == SUMMARY_PREFIX + "SUMMARY: planned p1 then p2"
        assert not any("STEP-ONE-MARKER" in t for t in texts)
