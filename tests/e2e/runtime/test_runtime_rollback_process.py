"""Rollback across processes: a runtime killed in the middle of undoing finishes the undo exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import Reply, call, reply
from e2e.runtime.runtime_process import RunSetup, RuntimeProcess
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import agent, http_tool

Start = Callable[[dict[str, str]], RuntimeProcess]


def _post_with_undo(endpoint: CountingEndpoint, path: str) -> Reply:
    arguments: dict[str, Any] = {
        "method": "POST",
        "url": f"{endpoint.url}{path}",
        "undo": {"method": "DELETE", "url": f"{endpoint.url}{path}"},
    }
    return reply(tool_calls=[call("http_request", arguments)])


def test_a_runtime_killed_during_rollback_is_restarted_and_undoes_each_change_once_newest_first(
    scripted_llm: ScriptedLLM, endpoint: CountingEndpoint, tmp_path: Path, start_runtime: Start
) -> None:
    endpoint.unhealthy_after("/health", effects=2)
    endpoint.hold_requests("DELETE", "/a")  # the second undo waits: the process is killed meanwhile
    scripted_llm.script("rollback", [_post_with_undo(endpoint, "/a"), _post_with_undo(endpoint, "/b")])
    tool = http_tool("127.0.0.1")
    tool["settings"]["guardrailUrl"] = f"{endpoint.url}/health"
    run = RunSetup(tmp_path)
    run.write(agent(scripted_llm.base_url, "rollback", tools=[tool]), "make two changes")

    first = start_runtime(run.env())
    seen = endpoint.wait_for_requests(6, timeout=60)
    assert [(r.method, r.path) for r in seen][-2:] == [("DELETE", "/b"), ("DELETE", "/a")]
    first.kill()
    endpoint.release()
    result = start_runtime(run.env()).result()

    assert (result["phase"], result["reason"]) == ("Failed", "RolledBack")
    assert [" ".join(e.split()[:2]) for e in endpoint.effects] == [
        "POST /a",
        "POST /b",
        "DELETE /b",
        "DELETE /a",
    ]
    requests = [(r.method, r.path) for r in endpoint.requests]
    assert requests.count(("DELETE", "/b")) == 1, "a finished undo is not repeated"
    assert requests.count(("DELETE", "/a")) == 2, (
        "the interrupted undo is retried (and applied once by its key)"
    )
    keys = {r.idempotency_key for r in endpoint.requests if (r.method, r.path) == ("DELETE", "/a")}
    assert len(keys) == 1
    assert len(scripted_llm.requests("rollback")) == 2, "the model is not asked again"
