"""What the plugin prints: the progress line, how a run ended, the usage table, trace links, decisions."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agency_runtime.kubectl.decide import choose_proposal, decision_entry, patch_ops
from agency_runtime.kubectl.errors import PluginError
from agency_runtime.kubectl.main import parser
from agency_runtime.kubectl.progress import ProgressLine, format_cost, outcome, progress_line, waiting_message
from agency_runtime.kubectl.run import build_run
from agency_runtime.kubectl.trace import trace_link
from agency_runtime.kubectl.usage import period, summarize, table

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _run(
    name: str = "r1",
    agent: str = "triage",
    namespace: str = "ops",
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": "42",
            "creationTimestamp": "2026-01-02T03:04:05Z",
        },
        "spec": {"agentRef": {"name": agent}, **spec},
        "status": status or {},
    }


def test_progress_line_shows_phase_step_tokens_and_cost() -> None:
    run = _run(
        status={
            "phase": "Running",
            "stepCount": 3,
            "usage": {"inputTokens": 1200, "outputTokens": 40, "totalTokens": 1240, "costUSD": 0.00042},
        }
    )
    assert progress_line(run) == "Running  step 3  tokens 1,240 (1,200 in / 40 out)  cost $0.00042"


def test_progress_line_of_a_new_run_reads_pending_with_nothing_spent() -> None:
    assert progress_line(_run()) == "Pending  step 0  tokens 0 (0 in / 0 out)  cost $0"


def test_progress_line_of_a_waiting_run_says_why_it_waits() -> None:
    ready = {"type": "Ready", "status": "False", "reason": "SecretMissing", "message": "Secret x not found"}
    run = _run(status={"phase": "Pending", "conditions": [ready]})
    assert progress_line(run) == "Pending  step 0  tokens 0 (0 in / 0 out)  cost $0  waiting: SecretMissing"


def test_cost_keeps_significant_digits_of_cheap_runs_and_rounds_dear_ones() -> None:
    assert (format_cost(0.000123), format_cost(1.5), format_cost(1234.56789)) == (
        "$0.000123",
        "$1.5",
        "$1,234.5679",
    )


def test_progress_on_a_terminal_rewrites_one_line_and_elsewhere_prints_each_change_once() -> None:
    tty, log = io.StringIO(), io.StringIO()
    for out, is_tty in ((tty, True), (log, False)):
        line = ProgressLine(out, tty=is_tty)
        for text in ("Pending", "Running  step 1", "Running  step 1", "Succeeded"):
            line.show(text)
        line.end()
    assert tty.getvalue() == "\rPending\x1b[K\rRunning  step 1\x1b[K\rSucceeded\x1b[K\n"
    assert log.getvalue() == "Pending\nRunning  step 1\nSucceeded\n"


def test_outcome_is_the_result_on_success_and_the_ready_reason_otherwise() -> None:
    ok = _run(status={"phase": "Succeeded", "result": "All reefers within range."})
    failed = _run(
        status={
            "phase": "BudgetExceeded",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "TokenBudget", "message": "used 5000"}
            ],
        }
    )
    assert outcome(ok) == "All reefers within range."
    assert outcome(failed) == "BudgetExceeded: TokenBudget: used 5000"


def test_waiting_message_lists_undecided_proposals_and_the_command_to_decide() -> None:
    pending = [
        {
            "proposalId": "p1",
            "tool": "http_request",
            "argumentsSummary": "DELETE /cache",
            "risk": "destructive",
        },
        {"proposalId": "p0", "tool": "http_request", "risk": "destructive"},
    ]
    run = _run(
        status={"phase": "WaitingForApproval", "pendingApprovals": pending},
        approvals=[{"proposalId": "p0", "decision": "Rejected"}],
    )
    text = waiting_message(run, "ops")
    assert "p1: http_request(DELETE /cache) risk destructive" in text
    assert "p0" not in text
    assert "kubectl agency approve r1 -n ops" in text


def test_run_name_is_generated_from_the_agent_and_budget_flags_become_the_run_budget() -> None:
    body = build_run("triage", "Check the reefers.", max_tokens=5000, max_cost_usd=0.5)
    assert body["metadata"] == {"generateName": "triage-"}
    assert body["spec"] == {
        "agentRef": {"name": "triage"},
        "input": "Check the reefers.",
        "budget": {"maxTokens": 5000, "maxCostUSD": 0.5},
    }
    assert build_run("a" * 70, "x", name="mine")["metadata"] == {"name": "mine"}
    assert len(build_run("a" * 70, "x")["metadata"]["generateName"]) == 58  # + 5 generated = 63


def test_usage_table_sums_by_namespace_and_agent_with_a_total() -> None:
    runs = [
        _run("a", "triage", "ops", {"usage": {"inputTokens": 100, "outputTokens": 10, "costUSD": 0.25}}),
        _run("b", "triage", "ops", {"usage": {"inputTokens": 300, "outputTokens": 30, "costUSD": 0.5}}),
        _run("c", "dispatch", "ops", {}),
        _run("d", "triage", "dev", {"usage": {"inputTokens": 1000, "outputTokens": 0, "costUSD": 1}}),
    ]
    lines = table(summarize(runs)).splitlines()
    assert [line.split() for line in lines] == [
        ["NAMESPACE", "AGENT", "RUNS", "INPUT", "TOKENS", "OUTPUT", "TOKENS", "COST", "(USD)"],
        ["dev", "triage", "1", "1,000", "0", "$1"],
        ["ops", "dispatch", "1", "0", "0", "$0"],
        ["ops", "triage", "2", "400", "40", "$0.75"],
        ["TOTAL", "4", "1,400", "40", "$1.75"],
    ]
    assert [r.agent for r in summarize(runs, agent="dispatch")] == ["dispatch"]


def test_usage_says_it_covers_only_runs_that_still_exist() -> None:
    text = period([_run(), _run("b")])
    assert "2 AgentRun(s) that still exist" in text
    assert "2026-01-02T03:04:05Z" in text


def test_trace_link_for_jaeger_grafana_tempo_and_templates() -> None:
    assert trace_link("http://jaeger:16686/", TRACE) == f"http://jaeger:16686/trace/{TRACE}"
    assert trace_link("http://tempo:3200/api/traces", TRACE) == f"http://tempo:3200/api/traces/{TRACE}"
    assert trace_link("https://t.example/x/{traceId}/view", TRACE) == f"https://t.example/x/{TRACE}/view"
    grafana = urlsplit(trace_link("https://grafana.example/explore?datasource=tempo-prod", TRACE))
    assert (grafana.netloc, grafana.path) == ("grafana.example", "/explore")
    left = json.loads(parse_qs(grafana.query)["left"][0])
    assert left["datasource"] == "tempo-prod"
    assert left["queries"][0]["query"] == TRACE


def test_only_waiting_proposal_is_chosen_and_several_need_an_id() -> None:
    one = _run(status={"pendingApprovals": [{"proposalId": "p1"}]})
    two = _run(status={"pendingApprovals": [{"proposalId": "p1"}, {"proposalId": "p2"}]})
    none = _run()
    assert choose_proposal(one, None) == "p1"
    assert choose_proposal(two, "p2") == "p2"
    with pytest.raises(PluginError, match=r"2 proposals waiting \(p1, p2\): pass --proposal ID"):
        choose_proposal(two, None)
    with pytest.raises(PluginError, match="no proposal waiting"):
        choose_proposal(none, None)


def test_a_decided_proposal_is_not_decided_again() -> None:
    run = _run(
        approvals=[{"proposalId": "p1", "decision": "Approved", "by": "ana", "at": "2026-01-01T00:00:00Z"}]
    )
    with pytest.raises(PluginError, match="already decided: Approved by ana"):
        choose_proposal(run, "p1")


def test_decision_appends_to_the_list_or_creates_it_on_the_version_read() -> None:
    entry = decision_entry("p1", "Rejected", "ana", datetime(2026, 1, 1, 12, tzinfo=UTC), "not now")
    assert entry == {
        "proposalId": "p1",
        "decision": "Rejected",
        "by": "ana",
        "at": "2026-01-01T12:00:00Z",
        "reason": "not now",
    }
    assert patch_ops(_run(approvals=[]), entry) == [
        {"op": "add", "path": "/spec/approvals/-", "value": entry}
    ]
    assert patch_ops(_run(), entry) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "add", "path": "/spec/approvals", "value": [entry]},
    ]


def test_connection_flags_work_before_and_after_the_command_as_with_kubectl() -> None:
    before = parser().parse_args(["-n", "ops", "--context", "prod", "usage"])
    after = parser().parse_args(["usage", "-n", "ops", "--context", "prod", "-A"])
    assert (before.namespace, before.context, before.all_namespaces) == ("ops", "prod", False)
    assert (after.namespace, after.context, after.all_namespaces) == ("ops", "prod", True)
    assert parser().parse_args(["logs", "r1"]).namespace is None
