"""The runtime as the operator runs it: a process per run, killed and restarted, sharing a journal."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import JsonDict, Reply, Turn, call, delay, reply
from e2e.runtime.runtime_process import API_KEY, RunSetup, RuntimeProcess
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import agent, http_tool

Start = Callable[[dict[str, str]], RuntimeProcess]


def _steps_asked(llm: ScriptedLLM, conversation: str) -> list[int]:
    """For each model request, which step it was for (1 + the assistant turns it already carried)."""
    return [1 + sum(m["role"] == "assistant" for m in b["messages"]) for b in llm.requests(conversation)]


def _three_steps(endpoint: CountingEndpoint) -> list[Reply]:
    return [
        reply(
            tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/a"})], usage=(10, 1)
        ),
        reply(
            tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/b"})], usage=(20, 2)
        ),
        reply("a and b are done", usage=(30, 3)),
    ]


@pytest.mark.parametrize("killed_at_step", [1, 2, 3])
def test_a_run_killed_at_a_step_and_restarted_ends_the_same_without_repeating_calls_or_side_effects(
    killed_at_step: int,
    scripted_llm: ScriptedLLM,
    endpoint: CountingEndpoint,
    tmp_path: Path,
    start_runtime: Start,
) -> None:
    steps = _three_steps(endpoint)
    hang = delay(60, steps[killed_at_step - 1])  # the process dies while waiting for this answer
    scripted_llm.script("durable", [*steps[: killed_at_step - 1], hang, *steps[killed_at_step - 1 :]])
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "durable", tools=[http_tool("127.0.0.1")]), "do a then b")

    first = start_runtime(run.env())
    scripted_llm.wait_for_requests("durable", killed_at_step, timeout=60)
    first.kill()
    result = start_runtime(run.env()).result()

    assert (result["phase"], result["result"], result["steps"]) == ("Succeeded", "a and b are done", 3)
    assert (result["usage"]["inputTokens"], result["usage"]["outputTokens"]) == (60, 6)
    assert [e.split()[1] for e in endpoint.effects] == ["/a", "/b"], "each side effect happened once"
    asked = _steps_asked(scripted_llm, "durable")
    expected = [1, 2, 3]
    expected.insert(killed_at_step - 1, killed_at_step)  # only the unanswered call is asked again
    assert asked == expected


def test_an_idempotent_call_killed_in_flight_is_retried_with_its_key_and_applied_once(
    scripted_llm: ScriptedLLM, endpoint: CountingEndpoint, tmp_path: Path, start_runtime: Start
) -> None:
    scripted_llm.script(
        "inflight",
        [
            reply(
                tool_calls=[
                    call("http_request", {"method": "PUT", "url": f"{endpoint.url}/cfg", "body": {"v": 2}})
                ]
            ),
            reply("set"),
        ],
    )
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "inflight", tools=[http_tool("127.0.0.1")]), "set v=2")
    endpoint.hold_requests()

    first = start_runtime(run.env())
    endpoint.wait_for_requests(1, timeout=60)
    first.kill()
    endpoint.release()
    result = start_runtime(run.env()).result()

    assert (result["phase"], result["result"]) == ("Succeeded", "set")
    keys = {r.idempotency_key for r in endpoint.requests}
    assert len(endpoint.requests) == 2
    assert keys == {f"{run.run_uid}/step-1/tool-0"}
    assert len(endpoint.effects) == 1
    assert len(scripted_llm.requests("inflight")) == 2


def test_a_destructive_call_killed_in_flight_is_not_redone_but_waits_for_an_approver(
    scripted_llm: ScriptedLLM, endpoint: CountingEndpoint, tmp_path: Path, start_runtime: Start
) -> None:
    scripted_llm.script(
        "lost-post",
        [
            reply(tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/pay"})]),
            reply("paid"),
        ],
    )
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "lost-post", tools=[http_tool("127.0.0.1")]), "pay the invoice")
    endpoint.hold_requests()

    first = start_runtime(run.env())
    endpoint.wait_for_requests(1, timeout=60)
    first.kill()
    endpoint.release()
    waiting = start_runtime(run.env()).result()
    still = start_runtime(run.env()).result()

    assert (waiting["phase"], waiting["reason"]) == ("WaitingForApproval", "ApprovalRequired")
    proposal = waiting["proposal"]
    assert proposal["tool"] == "http_request"
    assert "stopped before recording its outcome" in proposal["reason"]
    assert still["proposal"]["proposalId"] == proposal["proposalId"], "asked once, not again per process"
    assert len(endpoint.requests) == 1, "the lost call was not made again"
    assert len(scripted_llm.requests("lost-post")) == 1


def test_of_two_processes_of_one_run_the_older_is_fenced_and_reports_nothing(
    scripted_llm: ScriptedLLM, tmp_path: Path, start_runtime: Start
) -> None:
    older_asked, answer_older = threading.Event(), threading.Event()

    def older_waits(body: JsonDict) -> Reply:
        older_asked.set()  # (a scripted callable is recorded only once it returns)
        answer_older.wait(60)
        return reply("the older process's answer")

    turns: list[Turn] = [older_waits, reply("the newer process's answer")]
    scripted_llm.script("fence", turns)
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "fence"), "answer")
    older_result, newer_result = tmp_path / "older.json", tmp_path / "newer.json"

    older = start_runtime(run.env(result_file=older_result))
    assert older_asked.wait(60), older.stderr()
    newer = start_runtime(run.env(result_file=newer_result))
    result = newer.result()
    answer_older.set()
    code = older.wait()

    assert result["result"] == "the newer process's answer"
    assert code == 3, older.stderr()
    assert "fenced" in older.stderr()
    assert not older_result.exists()
    assert json.loads(newer_result.read_text())["result"] == "the newer process's answer"


def test_the_model_key_reaches_the_model_but_never_the_output_or_the_journal(
    scripted_llm: ScriptedLLM, tmp_path: Path, start_runtime: Start
) -> None:
    scripted_llm.script("keyed", [reply("ok")])
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "keyed"), "hi")

    process = start_runtime(run.env())
    process.result()

    written = process.stdout() + process.stderr()
    written += "".join(p.read_text() for p in run.journal_root.rglob("*") if p.is_file())
    assert API_KEY not in written
    assert scripted_llm.requests("keyed")


def test_a_wrong_environment_exits_2_naming_the_variable(tmp_path: Path, start_runtime: Start) -> None:
    run = RunSetup(tmp_path)
    env = run.env()
    del env["AGENCY_RUN_FILE"]

    process = start_runtime(env)

    assert process.wait() == 2
    assert "AGENCY_RUN_FILE" in process.stderr()


def test_sigterm_stops_the_run_with_exit_143_and_a_new_process_finishes_it(
    scripted_llm: ScriptedLLM, tmp_path: Path, start_runtime: Start
) -> None:
    scripted_llm.script("term", [delay(60, reply("never delivered")), reply("finished by the next process")])
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "term"), "answer")

    first = start_runtime(run.env())
    scripted_llm.wait_for_requests("term", 1, timeout=60)
    first.proc.send_signal(signal.SIGTERM)
    code = first.wait(timeout=30)
    result = start_runtime(run.env()).result()

    assert code == 143, first.stderr()
    assert "terminated by SIGTERM" in first.stderr()
    assert result["result"] == "finished by the next process"
