"""Bad input is refused by the real API server with a message that names the field and says what to do.

Each case starts from a valid object of its kind (itself checked to be accepted) and changes one thing, so
a refusal can only come from that change. Server-side dry run: exactly what `kubectl apply` would say.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from agency_testbed.cluster import Kubectl

BASES: dict[str, dict[str, Any]] = {
    "Agent": {"model": {"name": "openai/gpt-4o-mini"}, "instructions": "Watch the shipments."},
    "AgentPolicy": {},
    "AgentSchedule": {"agentRef": {"name": "monitor"}, "cron": "*/15 * * * *"},
    "AgentRun": {"agentRef": {"name": "monitor"}, "input": "Check container MSKU-4471."},
}
DELETE = object()
LONG = 65537


@dataclass(frozen=True)
class Case:
    """One bad object: its kind, what differs from the valid base, and what the refusal must say."""

    id: str
    kind: str
    spec: dict[str, Any] = field(default_factory=dict)
    expected: tuple[str, ...] = ()
    name: str = "sample"


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in change.items():
        if value is DELETE:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "agency.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def _tool(**fields: Any) -> dict[str, Any]:
    return {"tools": [{"name": "lookup", **fields}]}


_HTTP = {"url": "https://sensors.example.com/v1/readings"}

CASES = [
    # Agent
    Case("agent-without-model", "Agent", {"model": DELETE}, ("spec.model: Required value",)),
    Case(
        "agent-with-empty-model-name",
        "Agent",
        {"model": {"name": ""}},
        ("spec.model.name", "at least 1 chars"),
    ),
    Case(
        "agent-without-instructions",
        "Agent",
        {"instructions": DELETE},
        ("spec.instructions: Required value",),
    ),
    Case(
        "agent-instructions-over-64KiB",
        "Agent",
        {"instructions": "x" * LONG},
        ("spec.instructions: Too long", "65536"),
    ),
    Case(
        "agent-name-over-50",
        "Agent",
        name="a" * 51,
        expected=("metadata.name: Too long: may not be more than 50",),
    ),
    Case("agent-name-with-dots", "Agent", name="cold.chain", expected=("metadata.name", "should match")),
    Case(
        "agent-temperature-above-2",
        "Agent",
        {"model": {"parameters": {"temperature": 3}}},
        ("spec.model.parameters.temperature", "less than or equal to 2"),
    ),
    Case(
        "agent-fallback-repeats-primary",
        "Agent",
        {"model": {"fallbacks": [{"name": "openai/gpt-4o-mini"}]}},
        ("spec.model.fallbacks", "must not repeat the primary model"),
    ),
    Case(
        "agent-credentials-without-key",
        "Agent",
        {"model": {"credentialsSecretRef": {"name": "model-credentials"}}},
        ("spec.model.credentialsSecretRef.key: Required value",),
    ),
    Case(
        "agent-unknown-builtin-tool",
        "Agent",
        _tool(builtin="shell"),
        ("spec.tools[0].builtin: Unsupported value", '"kubernetes"'),
    ),
    Case(
        "agent-tool-both-builtin-and-http",
        "Agent",
        _tool(builtin="http", http=_HTTP, description="d"),
        ("spec.tools[0]", "exactly one of builtin, http or agentRef"),
    ),
    Case(
        "agent-tool-of-no-kind",
        "Agent",
        _tool(),
        ("spec.tools[0]", "exactly one of builtin, http or agentRef"),
    ),
    Case(
        "agent-http-tool-without-description",
        "Agent",
        _tool(http=_HTTP),
        ("spec.tools[0].description", "an HTTP tool needs a description"),
    ),
    Case(
        "agent-http-tool-with-ftp-url",
        "Agent",
        _tool(http={"url": "ftp://files.example.com/x"}, description="d"),
        ("spec.tools[0].http.url", "must be an http:// or https:// URL"),
    ),
    Case(
        "agent-settings-on-http-tool",
        "Agent",
        _tool(http=_HTTP, description="d", settings={"namespace": "x"}),
        ("spec.tools[0].settings", "settings apply only to built-in tools"),
    ),
    Case(
        "agent-duplicate-tool-names",
        "Agent",
        {"tools": [{"name": "memory", "builtin": "memory"}, {"name": "memory", "builtin": "memory"}]},
        ("spec.tools[1]: Duplicate value",),
    ),
    Case(
        "agent-tool-name-over-64",
        "Agent",
        {"tools": [{"name": "t" * 65, "builtin": "memory"}]},
        ("spec.tools[0].name: Too long",),
    ),
    Case(
        "agent-calling-itself",
        "Agent",
        {"tools": [{"name": "me", "agentRef": {"name": "sample"}}]},
        ("spec.tools", "an Agent cannot call itself as a tool"),
    ),
    Case(
        "agent-header-with-value-and-secret",
        "Agent",
        _tool(
            http={
                **_HTTP,
                "headers": [
                    {
                        "name": "Authorization",
                        "value": "x",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    }
                ],
            },
            description="d",
        ),
        ("spec.tools[0].http.headers[0]", "exactly one of value or valueFrom"),
    ),
    Case(
        "agent-negative-cpu",
        "Agent",
        {"runtime": {"resources": {"limits": {"cpu": "-1"}}}},
        ("spec.runtime.resources.limits.cpu", "must be a non-negative Kubernetes quantity"),
    ),
    Case(
        "agent-tool-name-starting-with-a-digit",
        "Agent",
        {"tools": [{"name": "9lives", "builtin": "memory"}]},
        ("spec.tools[0].name", "must be letters, digits, '_' and '-', starting with a letter"),
    ),
    Case(
        "agent-policy-ref-that-is-not-a-name",
        "Agent",
        {"policyRef": {"name": "Cold_Chain"}},
        ("spec.policyRef.name", "must be lowercase letters, digits, '-' and '.'"),
    ),
    Case("agent-misspelt-field", "Agent", {"modle": {"name": "x"}}, ('unknown field "spec.modle"',)),
    Case(
        "agent-unknown-memory-scope",
        "Agent",
        {"memory": {"scope": "Forever"}},
        ("spec.memory.scope: Unsupported value", '"Agent"'),
    ),
    # AgentPolicy
    Case(
        "policy-unknown-autonomy-level",
        "AgentPolicy",
        {"autonomy": {"destructive": {"level": "yolo"}}},
        ("spec.autonomy.destructive.level: Unsupported value", '"notify", "propose", "act"'),
    ),
    Case(
        "policy-unknown-autonomy-in-tool-rule",
        "AgentPolicy",
        {"tools": {"rules": [{"name": "dispatch", "autonomy": {"level": "always"}}]}},
        ("spec.tools.rules[0].autonomy.level: Unsupported value",),
    ),
    Case(
        "policy-unknown-risk",
        "AgentPolicy",
        {"tools": {"rules": [{"name": "dispatch", "risk": "harmless"}]}},
        ("spec.tools.rules[0].risk: Unsupported value", '"read-only", "idempotent", "destructive"'),
    ),
    Case(
        "policy-rollback-without-act",
        "AgentPolicy",
        {"autonomy": {"destructive": {"level": "propose", "rollback": "Required"}}},
        ("spec.autonomy.destructive.rollback", "rollback applies only when level is act"),
    ),
    Case(
        "policy-zero-run-tokens",
        "AgentPolicy",
        {"budgets": {"perRun": {"maxTokens": 0}}},
        ("spec.budgets.perRun.maxTokens", "greater than or equal to 1"),
    ),
    Case(
        "policy-negative-run-cost",
        "AgentPolicy",
        {"budgets": {"perRun": {"maxCostUSD": -1}}},
        ("spec.budgets.perRun.maxCostUSD", "greater than 0"),
    ),
    Case(
        "policy-zero-run-cost",
        "AgentPolicy",
        {"budgets": {"perRun": {"maxCostUSD": 0}}},
        ("spec.budgets.perRun.maxCostUSD", "greater than 0"),
    ),
    Case(
        "policy-zero-steps",
        "AgentPolicy",
        {"budgets": {"perRun": {"maxSteps": 0}}},
        ("spec.budgets.perRun.maxSteps", "greater than or equal to 1"),
    ),
    Case(
        "policy-negative-wall-seconds",
        "AgentPolicy",
        {"budgets": {"perRun": {"maxWallSeconds": -30}}},
        ("spec.budgets.perRun.maxWallSeconds", "greater than or equal to 1"),
    ),
    Case(
        "policy-zero-daily-cost",
        "AgentPolicy",
        {"budgets": {"perAgentDaily": {"maxCostUSD": 0}}},
        ("spec.budgets.perAgentDaily.maxCostUSD", "greater than 0"),
    ),
    Case(
        "policy-run-tokens-above-daily",
        "AgentPolicy",
        {"budgets": {"perRun": {"maxTokens": 100000}, "perAgentDaily": {"maxTokens": 50000}}},
        ("spec.budgets.perRun.maxTokens", "must not exceed spec.budgets.perAgentDaily.maxTokens"),
    ),
    Case(
        "policy-run-cost-above-daily",
        "AgentPolicy",
        {"budgets": {"perRun": {"maxCostUSD": 10}, "perAgentDaily": {"maxCostUSD": 2.5}}},
        ("spec.budgets.perRun.maxCostUSD", "must not exceed spec.budgets.perAgentDaily.maxCostUSD"),
    ),
    Case(
        "policy-tool-allowed-and-denied",
        "AgentPolicy",
        {"tools": {"allowed": ["kubernetes", "http"], "denied": ["http"]}},
        ("spec.tools", "cannot be both allowed and denied"),
    ),
    Case(
        "policy-bad-cidr",
        "AgentPolicy",
        {"network": {"egress": [{"cidrs": ["10.0.0.0/33"], "ports": [{"port": 443}]}]}},
        ("spec.network.egress[0].cidrs", "must be a CIDR"),
    ),
    Case(
        "policy-egress-without-destination",
        "AgentPolicy",
        {"network": {"egress": [{"ports": [{"port": 443}]}]}},
        ("spec.network.egress[0]", "at least one host or CIDR"),
    ),
    Case(
        "policy-serviceaccount-approver-without-namespace",
        "AgentPolicy",
        {"approvals": {"approvers": [{"kind": "ServiceAccount", "name": "reviewer"}]}},
        ("spec.approvals.approvers[0].namespace", "namespace is required for a ServiceAccount approver"),
    ),
    Case(
        "policy-token-ttl-below-10-minutes",
        "AgentPolicy",
        {"identity": {"tokenExpirationSeconds": 60}},
        ("spec.identity.tokenExpirationSeconds", "greater than or equal to 600"),
    ),
    Case(
        "policy-name-over-63",
        "AgentPolicy",
        name="p" * 64,
        expected=("metadata.name: Too long: may not be more than 63",),
    ),
    # AgentSchedule
    Case(
        "schedule-cron-in-words",
        "AgentSchedule",
        {"cron": "every day"},
        ("spec.cron", "must be five fields (minute hour day-of-month month day-of-week)"),
    ),
    Case("schedule-minute-61", "AgentSchedule", {"cron": "61 * * * *"}, ("spec.cron", "must be five fields")),
    Case(
        "schedule-six-fields", "AgentSchedule", {"cron": "0 0 * * * *"}, ("spec.cron", "must be five fields")
    ),
    Case(
        "schedule-unknown-time-zone",
        "AgentSchedule",
        {"timeZone": "Mars/Olympus"},
        ("spec.timeZone", "must be an IANA time zone name"),
    ),
    Case(
        "schedule-local-time-zone",
        "AgentSchedule",
        {"timeZone": "Local"},
        ("spec.timeZone", "must be an IANA time zone name"),
    ),
    Case(
        "schedule-without-cron-or-signal",
        "AgentSchedule",
        {"cron": DELETE},
        ("spec: Invalid value", "a schedule needs spec.cron, spec.signals, or both"),
    ),
    Case(
        "schedule-time-zone-without-cron",
        "AgentSchedule",
        {
            "cron": DELETE,
            "timeZone": "UTC",
            "signals": [{"name": "excursion", "type": "com.example.excursion"}],
        },
        ("spec.timeZone", "applies only to spec.cron"),
    ),
    Case(
        "schedule-unknown-concurrency-policy",
        "AgentSchedule",
        {"concurrencyPolicy": "Sometimes"},
        ("spec.concurrencyPolicy: Unsupported value", '"Allow", "Forbid", "Replace"'),
    ),
    Case(
        "schedule-duplicate-signal-names",
        "AgentSchedule",
        {"signals": [{"name": "a", "type": "t1"}, {"name": "a", "type": "t2"}]},
        ("spec.signals[1]: Duplicate value",),
    ),
    Case(
        "schedule-threshold-of-zero-events",
        "AgentSchedule",
        {"signals": [{"name": "a", "type": "t", "threshold": {"count": 0, "windowSeconds": 60}}]},
        ("spec.signals[0].threshold.count", "greater than or equal to 1"),
    ),
    Case(
        "schedule-negative-starting-deadline",
        "AgentSchedule",
        {"startingDeadlineSeconds": -1},
        ("spec.startingDeadlineSeconds", "greater than or equal to 1"),
    ),
    Case(
        "schedule-name-over-52",
        "AgentSchedule",
        name="s" * 53,
        expected=("metadata.name: Too long: may not be more than 52",),
    ),
    Case(
        "schedule-agent-name-over-50",
        "AgentSchedule",
        {"agentRef": {"name": "a" * 51}},
        ("spec.agentRef.name: Too long",),
    ),
    # AgentRun
    Case("run-without-agent", "AgentRun", {"agentRef": DELETE}, ("spec.agentRef: Required value",)),
    Case(
        "run-zero-token-budget",
        "AgentRun",
        {"budget": {"maxTokens": 0}},
        ("spec.budget.maxTokens", "greater than or equal to 1"),
    ),
    Case(
        "run-negative-cost-budget",
        "AgentRun",
        {"budget": {"maxCostUSD": -0.5}},
        ("spec.budget.maxCostUSD", "greater than 0"),
    ),
    Case("run-input-over-64KiB", "AgentRun", {"input": "x" * LONG}, ("spec.input: Too long", "65536")),
    Case(
        "run-delegation-without-parent",
        "AgentRun",
        {"trigger": {"type": "Delegation"}},
        ("spec.parentRunRef", "names the delegating run in spec.parentRunRef"),
    ),
    Case(
        "run-signal-trigger-without-event",
        "AgentRun",
        {"trigger": {"type": "Signal"}},
        ("spec.trigger.signal", "records it in spec.trigger.signal"),
    ),
    Case(
        "run-unknown-approval-decision",
        "AgentRun",
        {
            "approvals": [
                {"proposalId": "p1", "decision": "Maybe", "by": "dana", "at": "2025-01-01T00:00:00Z"}
            ]
        },
        ("spec.approvals[0].decision: Unsupported value", '"Approved", "Rejected"'),
    ),
    Case(
        "run-name-over-63",
        "AgentRun",
        name="r" * 64,
        expected=("metadata.name: Too long: may not be more than 63",),
    ),
]


@pytest.mark.usefixtures("agency_crds")
@pytest.mark.parametrize("kind", sorted(BASES))
def test_the_valid_base_of_each_kind_is_accepted(kubectl: Kubectl, namespace: str, kind: str) -> None:
    kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifest(kind, "sample", BASES[kind])
    )


@pytest.mark.usefixtures("agency_crds")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_naming_the_field(kubectl: Kubectl, namespace: str, case: Case) -> None:
    body = manifest(case.kind, case.name, _merge(BASES[case.kind], case.spec))
    result = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=body, check=False)
    assert result.returncode != 0, f"{case.id} was accepted"
    for expected in case.expected:
        assert expected in result.stderr
