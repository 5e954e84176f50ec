"""Manifests that break one CEL rule of the CRDs: cross-field rules, and for AgentRuns the transition rules
(immutability, approvals that only grow) which only an update can break.

Each violation is a name, the field the refusal must name (the rule's fieldPath, or the object the rule
sits on), and a change of the valid manifest. The schema-driven mutations cannot find these: each field
alone is fine, only the combination is not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

from integration.fuzz.mutations import Case, pick
from integration.fuzz.valid_manifests import ADMIN, SELF, JsonDict


@dataclass(frozen=True)
class Violation:
    name: str
    path: str
    change: Callable[[JsonDict], None]
    """Changes the spec in place."""


def _set(**fields: object) -> Callable[[JsonDict], None]:
    def change(spec: JsonDict) -> None:
        spec.update(copy.deepcopy(fields))

    return change


def _fallback_repeats_primary(spec: JsonDict) -> None:
    spec["model"]["fallbacks"][0]["name"] = spec["model"]["name"]


def _tool_with_two_kinds(spec: JsonDict) -> None:
    spec["tools"][0]["agentRef"] = {"name": "planner"}


def _tool_of_no_kind(spec: JsonDict) -> None:
    del spec["tools"][2]["agentRef"]


def _settings_on_http_tool(spec: JsonDict) -> None:
    spec["tools"][1]["settings"] = {"namespace": "x"}


def _http_tool_without_description(spec: JsonDict) -> None:
    del spec["tools"][1]["description"]


def _header_value_and_secret(spec: JsonDict) -> None:
    spec["tools"][1]["http"]["headers"][0]["valueFrom"] = {"secretKeyRef": {"name": "s", "key": "k"}}


def _header_without_value(spec: JsonDict) -> None:
    del spec["tools"][1]["http"]["headers"][0]["value"]


def _agent_calls_itself(spec: JsonDict) -> None:
    spec["tools"][2]["agentRef"]["name"] = SELF


AGENT = (
    Violation("fallback-repeats-primary", "spec.model.fallbacks", _fallback_repeats_primary),
    Violation("tool-of-two-kinds", "spec.tools[0]", _tool_with_two_kinds),
    Violation("tool-of-no-kind", "spec.tools[2]", _tool_of_no_kind),
    Violation("settings-on-http-tool", "spec.tools[1].settings", _settings_on_http_tool),
    Violation("http-tool-without-description", "spec.tools[1].description", _http_tool_without_description),
    Violation("header-value-and-secret", "spec.tools[1].http.headers[0]", _header_value_and_secret),
    Violation("header-without-value", "spec.tools[1].http.headers[0]", _header_without_value),
    Violation("agent-calls-itself", "spec.tools", _agent_calls_itself),
)


def _allowed_and_denied(spec: JsonDict) -> None:
    spec["tools"]["allowed"] = ["shell", "kube"]


def _rollback_without_act(spec: JsonDict) -> None:
    spec["autonomy"]["readOnly"] = {"level": "propose", "rollback": "Required"}


def _empty_tool_rule(spec: JsonDict) -> None:
    spec["tools"]["rules"][0] = {"name": "kube"}


def _service_account_without_namespace(spec: JsonDict) -> None:
    del spec["approvals"]["approvers"][1]["namespace"]


def _user_with_namespace(spec: JsonDict) -> None:
    spec["approvals"]["approvers"][0]["namespace"] = "default"


def _egress_to_nowhere(spec: JsonDict) -> None:
    spec["network"]["egress"][0] = {"ports": [{"port": 443}]}


def _bad_cidr(spec: JsonDict) -> None:
    spec["network"]["egress"][0]["cidrs"] = ["10.0.0.0/33"]


def _run_above_day(field: str) -> Callable[[JsonDict], None]:
    def change(spec: JsonDict) -> None:
        spec["budgets"]["perRun"][field] = spec["budgets"]["perAgentDaily"][field] * 2

    return change


POLICY = (
    Violation("tool-allowed-and-denied", "spec.tools", _allowed_and_denied),
    Violation("rollback-without-act", "spec.autonomy.readOnly.rollback", _rollback_without_act),
    Violation("tool-rule-without-effect", "spec.tools.rules[0]", _empty_tool_rule),
    Violation(
        "service-account-approver-without-namespace",
        "spec.approvals.approvers[1].namespace",
        _service_account_without_namespace,
    ),
    Violation("user-approver-with-namespace", "spec.approvals.approvers[0].namespace", _user_with_namespace),
    Violation("egress-to-nowhere", "spec.network.egress[0]", _egress_to_nowhere),
    Violation("bad-cidr", "spec.network.egress[0].cidrs", _bad_cidr),
    Violation("run-tokens-above-day", "spec.budgets.perRun.maxTokens", _run_above_day("maxTokens")),
    Violation("run-cost-above-day", "spec.budgets.perRun.maxCostUSD", _run_above_day("maxCostUSD")),
)


def _no_trigger(spec: JsonDict) -> None:
    del spec["cron"], spec["signals"], spec["timeZone"]


def _zone_without_cron(spec: JsonDict) -> None:
    del spec["cron"]


SCHEDULE = (
    Violation("no-cron-and-no-signals", "spec", _no_trigger),
    Violation("time-zone-without-cron", "spec.timeZone", _zone_without_cron),
    Violation("unknown-time-zone", "spec.timeZone", _set(timeZone="Mars/Olympus_Mons")),
    Violation("local-time-zone", "spec.timeZone", _set(timeZone="Local")),
    *(
        Violation(f"cron-{label}", "spec.cron", _set(cron=cron))
        for label, cron in (
            ("step-zero", "*/0 * * * *"),
            ("minute-60", "60 * * * *"),
            ("four-fields", "* * * *"),
            ("six-fields", "0 * * * * *"),
            ("every-macro", "@every 5m"),
            ("reboot-macro", "@reboot"),
            ("words", "every five minutes"),
        )
    ),
)
#: Cron strings the API server accepts but the operator must refuse in a condition (they never fire).
NEVER_FIRING_CRON = ("0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *")


def _signal_trigger_without_event(spec: JsonDict) -> None:
    del spec["trigger"]["signal"]


def _delegation_without_parent(spec: JsonDict) -> None:
    spec["trigger"] = {"type": "Delegation"}


def _decided_by_someone_else(spec: JsonDict) -> None:
    spec["approvals"][0]["by"] = "mallory"


RUN = (
    Violation("signal-trigger-without-event", "spec.trigger.signal", _signal_trigger_without_event),
    Violation("delegation-without-parent", "spec.parentRunRef", _delegation_without_parent),
    Violation("decision-under-another-name", "spec.approvals[0].by", _decided_by_someone_else),
)


def _approve_more(spec: JsonDict) -> None:
    spec["approvals"].append(
        {"proposalId": "p2", "decision": "Rejected", "by": ADMIN, "at": "2026-01-02T00:00:00Z"}
    )


def _forget_decisions(spec: JsonDict) -> None:
    del spec["approvals"]


def _change_decision(spec: JsonDict) -> None:
    spec["approvals"][0]["decision"] = "Rejected"


#: Updates of a created AgentRun: every one but the first must be refused naming the field.
RUN_UPDATES = (
    Violation("update-adds-a-decision", "", _approve_more),
    Violation("update-changes-input", "spec.input", _set(input="something else")),
    Violation("update-changes-agent", "spec.agentRef", _set(agentRef={"name": "other"})),
    Violation("update-changes-budget", "spec.budget", _set(budget={"maxSteps": 1})),
    Violation("update-changes-ttl", "spec.ttlSecondsAfterFinished", _set(ttlSecondsAfterFinished=1)),
    Violation("update-changes-trigger", "spec.trigger", _set(trigger={"type": "Manual"})),
    Violation("update-adds-parent", "spec.parentRunRef", _set(parentRunRef={"name": "parent"})),
    Violation("update-removes-decisions", "spec.approvals", _forget_decisions),
    Violation("update-changes-a-decision", "spec.approvals[0]", _change_decision),
)

VIOLATIONS = {"Agent": AGENT, "AgentPolicy": POLICY, "AgentSchedule": SCHEDULE, "AgentRun": RUN}


def _changed(base: JsonDict, violation: Violation) -> JsonDict:
    manifest = copy.deepcopy(base)
    violation.change(manifest["spec"])
    return manifest


@st.composite
def rule_case(draw: st.DrawFn, kind: str, base: JsonDict) -> Case:
    """One cross-field rule of the kind broken; for AgentRuns also an update breaking a transition rule,
    and for AgentSchedules a cron string the API server accepts that never fires."""
    if kind == "AgentSchedule" and draw(st.integers(0, 3)) == 0:
        cron = pick(draw, NEVER_FIRING_CRON)
        return Case(kind, "cron-never-fires", "spec.cron", {**base, "spec": {**base["spec"], "cron": cron}})
    if kind == "AgentRun" and draw(st.booleans()):
        violation = pick(draw, RUN_UPDATES)
        return Case(kind, f"rule:{violation.name}", violation.path, base, update=_changed(base, violation))
    violation = pick(draw, VIOLATIONS[kind])
    return Case(kind, f"rule:{violation.name}", violation.path, _changed(base, violation))
