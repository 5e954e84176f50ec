"""Reflect and adapt across processes: what one run of an agent learned, its next run is told."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import reply
from e2e.runtime.runtime_process import RunSetup, RuntimeProcess
from unit.runtime.runtime_support import agent

Start = Callable[[dict[str, str]], RuntimeProcess]
LESSON = "Ask the depot for the freezer log before dispatching anyone."


def test_the_lesson_of_one_run_is_in_the_first_request_of_the_agents_next_run(
    scripted_llm: ScriptedLLM, tmp_path: Path, start_runtime: Start
) -> None:
    scripted_llm.script("first-run", [reply("dispatched"), reply(LESSON)])
    scripted_llm.script("second-run", [reply("checked the log first"), reply("none")])
    first = RunSetup(tmp_path, run_uid="0c7d8a52-e2e0-4e1f-9a00-00000000000a")
    second = RunSetup(tmp_path, run_uid="0c7d8a52-e2e0-4e1f-9a00-00000000000b")
    first.write(agent(scripted_llm.base_url, "first-run", memory={"scope": "Agent"}), "check container 1")

    result = start_runtime(first.env()).result()
    second.write(agent(scripted_llm.base_url, "second-run", memory={"scope": "Agent"}), "check container 2")
    start_runtime(second.env()).result()

    assert result["reflection"]["lesson"] == LESSON
    system = scripted_llm.requests("second-run")[0]["messages"][0]["content"]
    assert LESSON in system
