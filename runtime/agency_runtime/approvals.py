"""Approval decisions on proposed tool calls: read from the run's AgentRun, weighed against the policy.

A proposal waits in the run's status.pendingApprovals; an approver appends a decision to spec.approvals.
The API server has already checked two things when the decision was recorded (the ValidatingAdmissionPolicy
in `api.admission`): that `by` is the requester's own user name, and that the requester holds the RBAC verb
`approve` on this AgentRun. The runtime adds the policy's own list: a decision `by` a User or
ServiceAccount the policy does not name is ignored (with a notice in the journal). Group membership is not
visible in a user name, so when the policy names Groups, a decision by anyone else is trusted to RBAC (the
operator grants `approve` to exactly the policy's approvers). A proposal older than the policy's
`timeoutSeconds` counts as rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from agency_runtime.api.policy import AgentPolicySpec, Approver
from agency_runtime.api.run import Approval, Decision
from agency_runtime.kube import KubeApiError, KubeClient, RunObject

log = logging.getLogger("agency_runtime.approvals")

JsonDict = dict[str, Any]
MAX_SUMMARY = 4096


class Outcome(StrEnum):
    APPROVED = "Approved"
    REJECTED = "Rejected"
    EXPIRED = "Expired"
    WAITING = "Waiting"


@dataclass(frozen=True)
class Verdict:
    """What happens to one proposal now, and notices about decisions that did not count."""

    outcome: Outcome
    by: str | None = None
    reason: str | None = None
    at: str | None = None
    ignored: list[str] = field(default_factory=list)

    def to_json(self) -> JsonDict:
        return {"decision": self.outcome.value, "by": self.by, "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, raw: JsonDict) -> Verdict:
        return cls(
            outcome=Outcome(str(raw["decision"])),
            by=raw.get("by"),
            reason=raw.get("reason"),
            at=raw.get("at"),
        )

    def told_to_model(self) -> str:
        """What the model reads instead of the call's result when it may not make the call."""
        if self.outcome is Outcome.EXPIRED:
            return f"not executed: {self.reason}. Do not call it again; find another way or explain."
        because = f": {self.reason.rstrip('.')}" if self.reason else " (no reason given)"
        return (
            f"not executed: the call was rejected by {self.by}{because}. "
            "Do not call it again; find another way or explain."
        )


def service_account_user(namespace: str, name: str) -> str:
    """The user name the API server gives a ServiceAccount's tokens."""
    return f"system:serviceaccount:{namespace}:{name}"


def approver_named(by: str, approvers: list[Approver]) -> bool:
    """True when `by` is a User or ServiceAccount the policy names."""
    for approver in approvers:
        if approver.kind == "User" and approver.name == by:
            return True
        if approver.kind == "ServiceAccount" and by == service_account_user(
            approver.namespace or "", approver.name
        ):
            return True
    return False


def counts(by: str, policy: AgentPolicySpec | None) -> str | None:
    """None when a decision by `by` counts, else why it is ignored."""
    approvers = policy.approvals.approvers if policy is not None else []
    if approver_named(by, approvers):
        return None
    if any(a.kind == "Group" for a in approvers):
        return None  # group membership was checked by RBAC (`approve`) when the decision was recorded
    if not approvers:
        return f"a decision by {by} is ignored: the policy names no approvers, so proposals can only expire"
    return f"a decision by {by} is ignored: the policy's spec.approvals.approvers does not name them"


def judge(
    proposal: JsonDict, approvals: dict[str, Approval], policy: AgentPolicySpec | None, now: float
) -> Verdict:
    """The verdict on a journaled proposal given the decisions recorded in spec.approvals at `now`."""
    ignored: list[str] = []
    decision = approvals.get(str(proposal.get("proposalId")))
    if decision is not None:
        why_not = counts(decision.by, policy)
        if why_not is None:
            return Verdict(
                Outcome.APPROVED if decision.decision is Decision.APPROVED else Outcome.REJECTED,
                by=decision.by,
                reason=decision.reason,
                at=decision.at.isoformat(),
            )
        ignored.append(why_not)
    timeout = policy.approvals.timeout_seconds if policy is not None else None
    requested = float(proposal.get("requestedAt", now))
    if timeout is not None and now - requested >= timeout:
        return Verdict(
            Outcome.EXPIRED,
            reason=(
                f"the proposal expired after {timeout} seconds without a decision, so it counts as rejected"
            ),
            ignored=ignored,
        )
    return Verdict(Outcome.WAITING, ignored=ignored)


def decisions_of(agent_run: JsonDict) -> dict[str, Approval]:
    """spec.approvals of an AgentRun by proposal id; entries that do not parse are skipped (and logged)."""
    out: dict[str, Approval] = {}
    for raw in (agent_run.get("spec") or {}).get("approvals") or []:
        try:
            approval = Approval.model_validate(raw)
        except ValidationError as err:
            log.warning("ignoring an approval entry that does not parse: %s", err)
            continue
        out.setdefault(approval.proposal_id, approval)
    return out


def load_decisions(client: KubeClient, run: RunObject) -> dict[str, Approval]:
    """The decisions recorded on the run's AgentRun; none (logged) when it cannot be read."""
    try:
        return decisions_of(client.get(run.path()))
    except KubeApiError as err:
        log.warning("cannot read AgentRun %s/%s for approval decisions: %s", run.namespace, run.name, err)
        return {}


def pending_approval(proposal: JsonDict) -> JsonDict:
    """A journaled proposal as an entry of status.pendingApprovals (camelCase, bounded)."""
    arguments = str(proposal.get("arguments", ""))
    if len(arguments) > MAX_SUMMARY:
        arguments = arguments[: MAX_SUMMARY - 3] + "..."
    requested = datetime.fromtimestamp(float(proposal.get("requestedAt", 0.0)), UTC)
    entry: JsonDict = {
        "proposalId": str(proposal["proposalId"]),
        "tool": str(proposal["tool"])[:64],
        "argumentsSummary": arguments,
        "risk": str(proposal["risk"]),
        "requestedAt": requested.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    reason = proposal.get("reason")
    if isinstance(reason, str) and reason:
        entry["reason"] = reason[:MAX_SUMMARY]
    return entry
