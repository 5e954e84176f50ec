"""The journal makes a run durable: a new process continues it without repeating what was done."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agency_runtime.api.common import RunPhase
from agency_runtime.contract import Budget
from agency_runtime.journal import Fenced, JournalCorrupt, Kind
from agency_runtime.journal_file import JOURNAL, FileJournal
from agency_runtime.kube import KubeApiError
from agency_runtime.loop import run_agent
from agency_runtime.process import journal_hint
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Crash, CrashingJournal, Runner, agent, http_tool


def test_of_two_processes_on_one_journal_the_older_is_fenced(tmp_path: Path) -> None:
    older, newer = FileJournal(tmp_path), FileJournal(tmp_path)
    older.open()
    older.append(Kind.EVENT, "a", {})
    records = newer.open()

    with pytest.raises(Fenced, match="newer process"):
        older.append(Kind.EVENT, "b", {})
    newer.append(Kind.EVENT, "c", {})

    assert (older.epoch, newer.epoch) == (1, 2)
    assert [r.key for r in records] == ["a"]
    assert [(r.key, r.epoch) for r in FileJournal(tmp_path).open()] == [("a", 1), ("c", 2)]


def test_a_torn_last_line_from_a_killed_writer_is_cut_off_and_the_journal_goes_on(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)
    journal.open()
    journal.append(Kind.EVENT, "kept", {"n": 1})
    journal.close()
    with (tmp_path / JOURNAL).open("ab") as handle:
        handle.write(b'{"seq": 2, "kind": "ev')

    again = FileJournal(tmp_path)
    records = again.open()
    again.append(Kind.EVENT, "next", {})

    assert [r.key for r in records] == ["kept"]
    assert [(r.seq, r.key) for r in FileJournal(tmp_path).open()] == [(1, "kept"), (2, "next")]


def test_a_restarted_run_continues_without_asking_the_model_again_for_answered_steps(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "resume",
        [
            reply(
                tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/a"})],
                usage=(10, 1),
            ),
            reply(
                tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/b"})],
                usage=(20, 2),
            ),
            reply("both done", usage=(30, 3)),
        ],
    )
    spec = agent(scripted_llm.base_url, "resume", tools=[http_tool("127.0.0.1")])
    crashing = CrashingJournal(runner.root / "journal" / "run-1", Kind.RESULT, "step-2/model")
    with pytest.raises(Crash):
        run_agent(runner.context(spec, journal=crashing))
    crashing.close()

    result = runner.run(spec)

    assert (result.phase, result.result, result.steps) == (RunPhase.SUCCEEDED, "both done", 3)
    assert (result.usage.input_tokens, result.usage.output_tokens) == (60, 6)
    assert len(scripted_llm.requests("resume")) == 3, "each step's model call was made exactly once"
    assert [e.split()[1] for e in endpoint.effects] == ["/a", "/b"]
    started = next(r for r in runner.journal_records() if r.kind is Kind.STARTED)
    assert result.trace_id == str(started.data["traceparent"]).split("-")[1], (
        "the resumed run stays in its trace"
    )


def test_an_idempotent_call_cut_off_before_its_result_is_retried_with_the_same_idempotency_key(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "put",
        [
            reply(tool_calls=[call("http_request", {"method": "PUT", "url": f"{endpoint.url}/k"})]),
            reply("ok"),
        ],
    )
    spec = agent(scripted_llm.base_url, "put", tools=[http_tool("127.0.0.1")])
    crashing = CrashingJournal(runner.root / "journal" / "run-1", Kind.RESULT, "step-1/tool-0", before=True)
    with pytest.raises(Crash):
        run_agent(runner.context(spec, journal=crashing))
    crashing.close()

    result = runner.run(spec)

    assert result.phase is RunPhase.SUCCEEDED
    keys = [r.idempotency_key for r in endpoint.requests]
    assert keys == ["run-1/step-1/tool-0", "run-1/step-1/tool-0"], "retried once, with the same key"
    assert len(endpoint.effects) == 1, "the endpoint applied it once"


def test_a_destructive_call_whose_outcome_is_unknown_is_not_redone_but_proposed_for_approval(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "post", [reply(tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/pay"})])]
    )
    spec = agent(scripted_llm.base_url, "post", tools=[http_tool("127.0.0.1")])
    crashing = CrashingJournal(runner.root / "journal" / "run-1", Kind.RESULT, "step-1/tool-0", before=True)
    with pytest.raises(Crash):
        run_agent(runner.context(spec, journal=crashing))
    crashing.close()

    result = runner.run(spec)
    again = runner.run(spec)

    assert result.phase is RunPhase.WAITING_FOR_APPROVAL
    assert result.proposal is not None
    assert result.proposal["tool"] == "http_request"
    assert "stopped before recording its outcome" in result.proposal["reason"]
    assert "Approve: make the call again. Reject: do not repeat it" in result.proposal["reason"]
    assert again.proposal is not None
    assert again.proposal["proposalId"] == result.proposal["proposalId"], "asked once, still waiting"
    assert len(endpoint.requests) == 1
    assert len(scripted_llm.requests("post")) == 1


def test_a_finished_run_started_again_reports_the_same_result_without_any_call(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("once", [reply("the answer", usage=(5, 5))])
    spec = agent(scripted_llm.base_url, "once")

    first = runner.run(spec)
    second = runner.run(spec)

    assert second.to_json() == first.to_json()
    assert len(scripted_llm.requests("once")) == 1


def test_a_restarted_run_keeps_counting_wall_time_from_its_first_start(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script(
        "clock", [reply(tool_calls=[call("update_plan", {"plan": "p"})], usage=(4, 2))], repeat_last=True
    )
    spec = agent(scripted_llm.base_url, "clock")
    crashing = CrashingJournal(runner.root / "journal" / "run-1", Kind.RESULT, "step-1/model")
    with pytest.raises(Crash):
        run_agent(runner.context(spec, journal=crashing, budget=Budget(max_wall_seconds=600)))
    crashing.close()
    an_hour_later = time.time() + 3600

    result = runner.run(spec, budget=Budget(max_wall_seconds=600), clock=lambda: an_hour_later)

    assert (result.phase, result.limit) == (RunPhase.BUDGET_EXCEEDED, "wall")
    assert (result.steps, result.usage.total_tokens) == (1, 6)
    assert len(scripted_llm.requests("clock")) == 1


@pytest.mark.parametrize(
    ("error", "names"),
    [
        (KubeApiError(403, "Forbidden", "cannot update configmaps"), "Role to allow"),
        (
            KubeApiError(0, "Unreachable", "PUT /api/v1/...: ConnectError"),
            "did not answer (retried for 120 s)",
        ),
        (KubeApiError(503, "ServiceUnavailable", "etcd leader changed"), "did not answer"),
        (KubeApiError(422, "Invalid", "data too long"), "refused the journal's request"),
        (JournalCorrupt("record 3 of run-1 is not JSON"), "stored data is damaged"),
    ],
)
def test_a_journal_that_cannot_be_kept_is_blamed_on_its_real_cause(
    error: KubeApiError | JournalCorrupt, names: str
) -> None:
    hint = journal_hint(error)
    assert names in hint
    if not isinstance(error, KubeApiError) or error.status != 403:
        assert "Role" not in hint  # an unreachable or refusing server is not an RBAC problem
