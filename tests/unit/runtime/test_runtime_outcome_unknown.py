"""A destructive call whose process died before its outcome was journaled is not redone on the runtime's own
authority: an approver decides whether it is made again, and that decision is acted on exactly once."""

from __future__ import annotations

import pytest

from agency_runtime.api.common import RunPhase
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.api.run import Approval
from agency_runtime.journal import Kind
from agency_runtime.loop import RunResult, run_agent
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import (
    Crash,
    CrashingJournal,
    Runner,
    act_on_everything,
    agent,
    decision,
    http_tool,
    tool_messages,
)


def _acting(endpoint: CountingEndpoint) -> AgentPolicySpec:
    """Destructive calls act without approval; the User dana approves."""
    port = int(endpoint.url.rsplit(":", 1)[1])
    return act_on_everything(
        network={"egress": [{"hosts": ["127.0.0.1"], "ports": [{"port": port}]}]},
        approvals={"approvers": [{"kind": "User", "name": "dana"}]},
    )


def _lost_payment(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint, conversation: str
) -> RunResult:
    """A run whose process made a POST and died before journaling its result; the next process's result."""
    scripted_llm.script(
        conversation,
        [
            reply(tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/pay"})]),
            reply("handled the payment"),
        ],
    )
    spec = agent(scripted_llm.base_url, conversation, tools=[http_tool("127.0.0.1")])
    crashing = CrashingJournal(runner.root / "journal" / "run-1", Kind.RESULT, "step-1/tool-0", before=True)
    with pytest.raises(Crash):
        run_agent(runner.context(spec, policy=_acting(endpoint), journal=crashing))
    crashing.close()
    return _resume(runner, scripted_llm, endpoint, conversation, {})


def _resume(
    runner: Runner,
    scripted_llm: ScriptedLLM,
    endpoint: CountingEndpoint,
    conversation: str,
    approvals: dict[str, Approval],
) -> RunResult:
    spec = agent(scripted_llm.base_url, conversation, tools=[http_tool("127.0.0.1")])
    return runner.run(spec, policy=_acting(endpoint), approvals=approvals)


def test_an_approved_repeat_of_a_lost_destructive_call_is_made_once_and_the_run_goes_on(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    waiting = _lost_payment(scripted_llm, runner, endpoint, "approve-repeat")
    assert waiting.phase is RunPhase.WAITING_FOR_APPROVAL
    assert waiting.proposal is not None
    approved = decision(waiting.proposal["proposalId"], "Approved", "dana", "the payment did not arrive")

    resumed = _resume(runner, scripted_llm, endpoint, "approve-repeat", approved)
    replayed = _resume(runner, scripted_llm, endpoint, "approve-repeat", approved)

    assert (resumed.phase, resumed.result) == (RunPhase.SUCCEEDED, "handled the payment")
    assert replayed.to_json() == resumed.to_json()
    assert [(r.method, r.path) for r in endpoint.requests] == [("POST", "/pay"), ("POST", "/pay")], (
        "the lost call, then its approved repeat: once"
    )
    decisions = [r.data for r in runner.journal_records() if r.key.endswith("/decision")]
    assert [(d["decision"], d["by"]) for d in decisions] == [("Approved", "dana")]
    assert len(scripted_llm.requests("approve-repeat")) == 2


def test_a_rejected_repeat_is_not_made_and_the_model_is_told_its_effect_is_unknown(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    waiting = _lost_payment(scripted_llm, runner, endpoint, "reject-repeat")
    assert waiting.proposal is not None
    rejected = decision(waiting.proposal["proposalId"], "Rejected", "dana", "I will check the ledger.")

    resumed = _resume(runner, scripted_llm, endpoint, "reject-repeat", rejected)
    replayed = _resume(runner, scripted_llm, endpoint, "reject-repeat", rejected)

    assert resumed.phase is RunPhase.SUCCEEDED
    assert replayed.to_json() == resumed.to_json()
    assert len(endpoint.requests) == 1, "only the lost call; it was not repeated"
    (told,) = tool_messages(scripted_llm.requests("reject-repeat")[1])
    assert told.startswith("not repeated: ")
    assert "whether it took effect is unknown" in told
    assert "making it again was rejected by dana: I will check the ledger" in told


def test_a_decision_by_someone_the_policy_does_not_name_leaves_the_lost_call_waiting(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    waiting = _lost_payment(scripted_llm, runner, endpoint, "stranger")
    assert waiting.proposal is not None
    by_eve = decision(waiting.proposal["proposalId"], "Approved", "eve")

    still = _resume(runner, scripted_llm, endpoint, "stranger", by_eve)

    assert still.phase is RunPhase.WAITING_FOR_APPROVAL
    assert len(endpoint.requests) == 1
