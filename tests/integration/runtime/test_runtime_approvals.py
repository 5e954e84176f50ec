"""Approvals: recorded in spec.approvals by someone RBAC allows to `approve`, under their own name; a
resumed run then makes the approved call, or tells the model who rejected it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agency_runtime.api.common import RunPhase
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.approvals import load_decisions
from agency_runtime.journal import Kind
from agency_runtime.loop import RunResult, run_agent
from agency_runtime.status_kube import KubeStatusReporter
from agency_testbed.cluster import Testbed
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from integration.runtime.run_identity import RunIdentity, create_person
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Runner, agent, http_tool, policy, tool_messages

MERGE = {"Content-Type": "application/merge-patch+json"}


def _governed(endpoint: CountingEndpoint, namespace: str) -> AgentPolicySpec:
    """Destructive calls wait for approval; the ServiceAccount `approver` decides."""
    port = int(endpoint.url.rsplit(":", 1)[1])
    return policy(
        network={"egress": [{"hosts": ["127.0.0.1"], "ports": [{"port": port}]}]},
        approvals={"approvers": [{"kind": "ServiceAccount", "name": "approver", "namespace": namespace}]},
    )


def _script(scripted_llm: ScriptedLLM, conversation: str, endpoint: CountingEndpoint) -> None:
    scripted_llm.script(
        conversation,
        [
            reply(tool_calls=[call("http_request", {"method": "DELETE", "url": f"{endpoint.url}/cache"})]),
            reply("done"),
        ],
    )


def _run(
    runner: Runner,
    identity: RunIdentity,
    conversation: str,
    base_url: str,
    governed: AgentPolicySpec,
    tools: list[dict[str, Any]] | None = None,
) -> RunResult:
    """One runtime process for the run: decisions read with the run's token, status patched with it."""
    spec = agent(base_url, conversation, tools=tools if tools is not None else [http_tool("127.0.0.1")])
    client = identity.client()
    reporter = KubeStatusReporter(client, identity.run)
    ctx = runner.context(spec, policy=governed, run_id=identity.run.uid)
    ctx.on_progress = reporter.progress
    ctx.approvals = load_decisions(client, identity.run)
    try:
        result = run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()
    reporter.report(result)
    client.close()
    assert reporter.failures == 0, "every status patch with the run's token was accepted"
    return result


def _agent_run(testbed: Testbed, identity: RunIdentity) -> dict[str, Any]:
    out = testbed.kubectl("get", "agentrun", identity.run.name, "-n", identity.run.namespace, "-o", "json")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _decide(
    testbed: Testbed, token: str, identity: RunIdentity, proposal_id: str, decision: str, by: str, reason: str
) -> httpx.Response:
    entry = {"proposalId": proposal_id, "decision": decision, "by": by, "at": "2026-01-01T00:00:00Z"}
    if reason:
        entry["reason"] = reason
    with testbed.http(token=token) as http:
        return http.patch(
            identity.run.path(), content=json.dumps({"spec": {"approvals": [entry]}}), headers=MERGE
        )


def test_an_approver_allowed_to_approve_records_a_decision_and_the_resumed_run_makes_the_call(
    testbed: Testbed,
    scripted_llm: ScriptedLLM,
    runner: Runner,
    endpoint: CountingEndpoint,
    identity: RunIdentity,
    tmp_path: Path,
) -> None:
    _script(scripted_llm, "approve", endpoint)
    governed = _governed(endpoint, identity.run.namespace)
    waiting = _run(runner, identity, "approve", scripted_llm.base_url, governed)
    assert waiting.phase is RunPhase.WAITING_FOR_APPROVAL
    assert waiting.proposal is not None
    proposal_id = waiting.proposal["proposalId"]
    (pending,) = _agent_run(testbed, identity)["status"]["pendingApprovals"]
    assert (pending["proposalId"], pending["tool"], pending["risk"]) == (
        proposal_id,
        "http_request",
        "destructive",
    )
    assert endpoint.requests == []

    user, token = create_person(
        testbed, identity.run.namespace, "approver", tmp_path, verbs=["get", "patch", "approve"]
    )
    response = _decide(testbed, token, identity, proposal_id, "Approved", user, "Cache rebuild is planned.")
    assert response.status_code == 200, response.text

    exporter = InMemorySpanExporter()
    runner.span_exporter = exporter
    resumed = _run(runner, identity, "approve", scripted_llm.base_url, governed)

    assert (resumed.phase, resumed.result) == (RunPhase.SUCCEEDED, "done")
    assert [e.split()[:2] for e in endpoint.effects] == [["DELETE", "/cache"]]
    decisions = [r.data for r in runner.journal_records(identity.run.uid) if r.key.endswith("/decision")]
    assert [(d["decision"], d["by"]) for d in decisions] == [("Approved", user)]
    events = [e for s in exporter.get_finished_spans() for e in s.events if e.name == "agency.approval"]
    assert [(e.attributes or {}).get("agency.approval.by") for e in events] == [user]
    status = _agent_run(testbed, identity)["status"]
    assert status["pendingApprovals"] == []
    assert status["stepCount"] == 2


def test_someone_without_the_approve_verb_is_refused_by_the_api_server_saying_what_they_need(
    testbed: Testbed, identity: RunIdentity, tmp_path: Path
) -> None:
    user, token = create_person(
        testbed, identity.run.namespace, "bystander", tmp_path, verbs=["get", "patch"]
    )

    response = _decide(testbed, token, identity, "p-1", "Approved", user, "")

    assert response.status_code == 403
    message = response.json()["message"]
    assert f"{user} may not decide on proposals of AgentRun {identity.run.name}" in message
    assert 'the RBAC verb "approve" on agentruns.agency.dev' in message
    assert "approvals" not in _agent_run(testbed, identity)["spec"]


def test_a_decision_in_someone_elses_name_is_refused(
    testbed: Testbed, identity: RunIdentity, tmp_path: Path
) -> None:
    user, token = create_person(
        testbed, identity.run.namespace, "approver", tmp_path, verbs=["get", "patch", "approve"]
    )

    response = _decide(testbed, token, identity, "p-1", "Approved", "dana@example.com", "")

    assert response.status_code == 403
    assert f'a decision is recorded under your own name: set by to "{user}"' in response.json()["message"]
    assert "approvals" not in _agent_run(testbed, identity)["spec"]


def test_a_rejected_call_is_not_made_and_the_model_is_told_who_rejected_it_and_why(
    testbed: Testbed,
    scripted_llm: ScriptedLLM,
    runner: Runner,
    endpoint: CountingEndpoint,
    identity: RunIdentity,
    tmp_path: Path,
) -> None:
    _script(scripted_llm, "reject", endpoint)
    governed = _governed(endpoint, identity.run.namespace)
    waiting = _run(runner, identity, "reject", scripted_llm.base_url, governed)
    assert waiting.proposal is not None
    user, token = create_person(
        testbed, identity.run.namespace, "approver", tmp_path, verbs=["get", "patch", "approve"]
    )
    response = _decide(
        testbed, token, identity, waiting.proposal["proposalId"], "Rejected", user, "Peak hours."
    )
    assert response.status_code == 200, response.text

    resumed = _run(runner, identity, "reject", scripted_llm.base_url, governed)

    assert resumed.phase is RunPhase.SUCCEEDED
    assert endpoint.requests == []
    told = tool_messages(scripted_llm.requests("reject")[1])
    assert told == [
        f"not executed: the call was rejected by {user}: Peak hours. Do not call it again; "
        "find another way or explain."
    ]
    kinds = [(r.kind, r.key) for r in runner.journal_records(identity.run.uid)]
    assert (Kind.RESULT, "step-1/tool-0") in kinds
    assert (Kind.INTENT, "step-1/tool-0") not in kinds


@pytest.mark.parametrize("approver_kind", ["not-named", "no-approvers"])
def test_a_decision_by_someone_the_policy_does_not_name_is_ignored_with_a_notice(
    testbed: Testbed,
    scripted_llm: ScriptedLLM,
    runner: Runner,
    endpoint: CountingEndpoint,
    identity: RunIdentity,
    tmp_path: Path,
    approver_kind: str,
) -> None:
    _script(scripted_llm, "ignored", endpoint)
    governed = _governed(endpoint, identity.run.namespace)
    if approver_kind == "no-approvers":
        governed = governed.model_copy(
            update={"approvals": governed.approvals.model_copy(update={"approvers": []})}
        )
    waiting = _run(runner, identity, "ignored", scripted_llm.base_url, governed)
    assert waiting.proposal is not None
    user, token = create_person(
        testbed, identity.run.namespace, "outsider", tmp_path, verbs=["get", "patch", "approve"]
    )
    assert (
        _decide(testbed, token, identity, waiting.proposal["proposalId"], "Approved", user, "").status_code
        == 200
    )

    again = _run(runner, identity, "ignored", scripted_llm.base_url, governed)

    assert again.phase is RunPhase.WAITING_FOR_APPROVAL
    assert endpoint.requests == []
    notices = [
        r.data["notice"]
        for r in runner.journal_records(identity.run.uid)
        if r.key.endswith("/decision-ignored")
    ]
    assert len(notices) == 1
    assert f"a decision by {user} is ignored" in notices[0]


def test_an_agent_asks_for_approval_in_words_and_reads_the_approvers_decision(
    testbed: Testbed,
    scripted_llm: ScriptedLLM,
    runner: Runner,
    endpoint: CountingEndpoint,
    identity: RunIdentity,
    tmp_path: Path,
) -> None:
    ask = {"summary": "Rotate the database password", "details": "Three apps restart during the rotation."}
    scripted_llm.script(
        "ask", [reply(tool_calls=[call("request_approval", ask)]), reply("rotation scheduled")]
    )
    governed = _governed(endpoint, identity.run.namespace)
    asking = [{"name": "request_approval", "builtin": "request_approval"}]
    waiting = _run(runner, identity, "ask", scripted_llm.base_url, governed, asking)
    assert waiting.phase is RunPhase.WAITING_FOR_APPROVAL
    assert waiting.proposal is not None
    (pending,) = _agent_run(testbed, identity)["status"]["pendingApprovals"]
    assert (pending["proposalId"], pending["tool"]) == (waiting.proposal["proposalId"], "request_approval")
    assert pending["reason"].startswith("the agent asks for approval: Rotate the database password")

    user, token = create_person(
        testbed, identity.run.namespace, "approver", tmp_path, verbs=["get", "patch", "approve"]
    )
    response = _decide(
        testbed, token, identity, waiting.proposal["proposalId"], "Approved", user, "Do it tonight."
    )
    assert response.status_code == 200, response.text
    resumed = _run(runner, identity, "ask", scripted_llm.base_url, governed, asking)

    assert (resumed.phase, resumed.result) == (RunPhase.SUCCEEDED, "rotation scheduled")
    assert tool_messages(scripted_llm.requests("ask")[1]) == [f"approved by {user}: Do it tonight."]
    assert _agent_run(testbed, identity)["status"]["pendingApprovals"] == []
