"""`request_approval`: the model asks an approver in words; whatever the autonomy, the run waits for the
decision, and the decision (who, why) is what the model reads back."""

from __future__ import annotations

import json
import time

from agency_runtime.api.common import RunPhase
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.api.run import Approval
from agency_runtime.approvals import pending_approval
from agency_runtime.loop import RunResult
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from unit.runtime.runtime_support import Runner, act_on_everything, agent, decision, policy, tool_messages

ASK = {"summary": "Restart the payments service", "details": "It leaks memory; a restart frees 2 GiB."}


def _asking(scripted_llm: ScriptedLLM, conversation: str) -> None:
    scripted_llm.script(
        conversation,
        [reply(tool_calls=[call("request_approval", ASK)]), reply("went on as decided")],
    )


def _run(
    runner: Runner,
    scripted_llm: ScriptedLLM,
    conversation: str,
    governed: AgentPolicySpec,
    approvals: dict[str, Approval] | None = None,
    clock: float | None = None,
) -> RunResult:
    spec = agent(
        scripted_llm.base_url,
        conversation,
        tools=[{"name": "request_approval", "builtin": "request_approval"}],
    )
    now = clock
    return runner.run(
        spec, policy=governed, approvals=approvals, clock=(lambda: now) if now is not None else time.time
    )


def _dana_approves(timeout_seconds: int | None = None) -> AgentPolicySpec:
    """Every tool may act; the User dana decides on requests (within `timeout_seconds`, if set)."""
    approvals: dict[str, object] = {"approvers": [{"kind": "User", "name": "dana"}]}
    if timeout_seconds is not None:
        approvals["timeoutSeconds"] = timeout_seconds
    return act_on_everything(approvals=approvals)


def test_a_request_for_approval_waits_even_when_every_tool_may_act_and_shows_what_is_asked(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    _asking(scripted_llm, "ask")

    waiting = _run(runner, scripted_llm, "ask", _dana_approves())

    assert waiting.phase is RunPhase.WAITING_FOR_APPROVAL
    assert waiting.proposal is not None
    shown = pending_approval(waiting.proposal)
    assert shown["tool"] == "request_approval"
    assert json.loads(shown["argumentsSummary"]) == ASK
    assert shown["reason"] == (
        "the agent asks for approval: Restart the payments service\n\nIt leaks memory; a restart frees 2 GiB."
    )
    assert len(scripted_llm.requests("ask")) == 1


def test_an_approved_request_tells_the_model_who_approved_and_why(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    _asking(scripted_llm, "approved")
    waiting = _run(runner, scripted_llm, "approved", _dana_approves())
    assert waiting.proposal is not None
    approved = decision(waiting.proposal["proposalId"], "Approved", "dana", "Go ahead, traffic is low.")

    resumed = _run(runner, scripted_llm, "approved", _dana_approves(), approved)
    replayed = _run(runner, scripted_llm, "approved", _dana_approves(), approved)

    assert (resumed.phase, resumed.result) == (RunPhase.SUCCEEDED, "went on as decided")
    assert replayed.to_json() == resumed.to_json()
    assert tool_messages(scripted_llm.requests("approved")[1]) == [
        "approved by dana: Go ahead, traffic is low."
    ]
    assert len(scripted_llm.requests("approved")) == 2


def test_a_rejected_request_tells_the_model_who_rejected_it_and_why(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    _asking(scripted_llm, "rejected")
    waiting = _run(runner, scripted_llm, "rejected", _dana_approves())
    assert waiting.proposal is not None
    rejected = decision(waiting.proposal["proposalId"], "Rejected", "dana", "Not during the sale.")

    resumed = _run(runner, scripted_llm, "rejected", _dana_approves(), rejected)

    assert resumed.phase is RunPhase.SUCCEEDED
    assert tool_messages(scripted_llm.requests("rejected")[1]) == ["rejected by dana: Not during the sale."]


def test_a_request_nobody_decides_on_in_time_counts_as_rejected(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    _asking(scripted_llm, "expired")
    governed = _dana_approves(timeout_seconds=60)
    started = time.time()

    first = _run(runner, scripted_llm, "expired", governed, clock=started)
    expired = _run(runner, scripted_llm, "expired", governed, clock=started + 61)

    assert first.phase is RunPhase.WAITING_FOR_APPROVAL
    assert expired.phase is RunPhase.SUCCEEDED
    assert tool_messages(scripted_llm.requests("expired")[1]) == [
        "rejected: the proposal expired after 60 seconds without a decision, so it counts as rejected"
    ]


def test_a_policy_that_denies_request_approval_refuses_it_without_waiting(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    _asking(scripted_llm, "denied")

    result = _run(runner, scripted_llm, "denied", policy(tools={"denied": ["request_approval"]}))

    assert result.phase is RunPhase.SUCCEEDED
    (told,) = tool_messages(scripted_llm.requests("denied")[1])
    assert told.startswith("refused: the policy denies tool 'request_approval'")
