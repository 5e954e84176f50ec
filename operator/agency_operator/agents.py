"""Agent and AgentPolicy status: which policy binds each agent, whether it can run, what it used today.

Recomputed from the objects themselves (agents, policies, runs, secrets) every time, so a policy edit,
a new Secret or a finished run all show up the next time an agent is looked at; a policy change looks
at every agent in its namespace at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from agency_operator import events
from agency_operator.approvers import ensure_approvers
from agency_operator.budget import daily_refusal, usage_today
from agency_operator.credentials import check_credentials
from agency_operator.kube import JsonDict, Kube, KubeError, path_for
from agency_operator.resolve import Refusal, check_agent, policy_for
from agency_operator.status import StatusDraft, ready
from agency_runtime.api.agent import Agent
from agency_runtime.api.meta import API_VERSION
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.api.run import AgentRun

BUDGET = "DailyBudgetAvailable"


def agent_status(
    agent: Agent,
    current: JsonDict | None,
    policies: Sequence[AgentPolicy],
    runs: Sequence[AgentRun],
    credentials: Refusal | None,
    now: datetime,
) -> StatusDraft:
    """The agent's next status (pure): bound policy, Ready, daily budget, usage today, runs in flight."""
    draft = StatusDraft(current, agent.metadata.generation)
    draft.set(skills=None)  # advertised again below only if the agent is Ready
    name = agent.metadata.name
    mine = [r for r in runs if r.spec.agent_ref.name == name]
    draft.set(runsInFlight=sum(1 for r in mine if not (r.status.phase and r.status.phase.finished)))
    started = [r for r in mine if r.status.start_time is not None]
    if started:
        last = max(started, key=lambda r: r.status.start_time or now)
        draft.set(
            lastRun={
                key: value
                for key, value in {
                    "name": last.metadata.name,
                    "phase": last.status.phase.value if last.status.phase else None,
                    "startTime": last.status.start_time.isoformat().replace("+00:00", "Z")
                    if last.status.start_time
                    else None,
                    "completionTime": last.status.completion_time.isoformat().replace("+00:00", "Z")
                    if last.status.completion_time
                    else None,
                }.items()
                if value is not None
            }
        )
    used = usage_today(runs, name, now)
    draft.set(usageToday=used.to_k8s())
    policy = policy_for(agent, policies)
    if isinstance(policy, Refusal):
        draft.set(boundPolicyRef=None)
        ready(draft, False, policy.reason, policy.message)
        return draft
    draft.set(boundPolicyRef={"name": policy.metadata.name})
    refusal = check_agent(agent, policy) or credentials
    spent = daily_refusal(name, policy.metadata.name, policy.spec.budgets.per_agent_daily, used)
    if spent is not None:
        draft.condition(BUDGET, False, spent.reason, spent.message)
    else:
        draft.condition(BUDGET, True, "WithinBudget", "The agent has daily budget left.")
    if refusal is not None:
        ready(draft, False, refusal.reason, refusal.message)
    elif spent is not None:
        ready(draft, False, spent.reason, spent.message)
    else:
        ready(draft, True, "Ready", f"Governed by AgentPolicy {policy.metadata.name}; new runs start.")
        advertise(draft, agent)
    return draft


def advertise(draft: StatusDraft, agent: Agent) -> None:
    """List the agent's skills in its status: only a Ready agent advertises (an agent that cannot run
    now is not offered to others); every other path through `agent_status` leaves them out."""
    draft.set(skills=[skill.name for skill in agent.spec.skills] or None)


def agent_runs(kube: Kube, namespace: str, agent: str) -> list[AgentRun]:
    """The Agent's runs, and only its own: its status counts no others (in flight, last run, usage today).

    The API server filters them by the CRD's selectable field `spec.agentRef.name`, so a namespace's other
    runs are neither sent nor parsed; a CRD installed before that field existed answers 400, and then the
    whole namespace is listed and filtered here.
    """
    path = path_for(API_VERSION, "agentruns", namespace)
    try:
        listed = kube.list(path, field_selector=f"spec.agentRef.name={agent}")
    except KubeError as err:
        if err.status != 400:
            raise
        listed = kube.list(path)
    return [AgentRun.from_k8s(r) for r in listed if r["spec"]["agentRef"]["name"] == agent]


def reconcile_agent(kube: Kube, namespace: str, name: str) -> JsonDict | None:
    """Write the Agent's status if it changed; the Agent as that write left it (None: nothing written)."""
    body = kube.get_or_none(path_for(API_VERSION, "agents", namespace, name))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    agent = Agent.from_k8s(body)
    policies = [AgentPolicy.from_k8s(p) for p in kube.list(path_for(API_VERSION, "agentpolicies", namespace))]
    runs = agent_runs(kube, namespace, name)
    draft = agent_status(
        agent, body.get("status"), policies, runs, check_credentials(kube, agent), datetime.now(UTC)
    )
    patch, path = draft.patch(), path_for(API_VERSION, "agents", namespace, name)
    after = None if patch is None else kube.patch_status(path, patch)
    if patch is not None and after is None:
        return None  # deleted meanwhile
    events.post_transitions(kube, body, draft.transitions)
    return after


def reconcile_policy(kube: Kube, namespace: str, name: str) -> None:
    """Count the agents bound to the policy (the caller re-checks the agents first)."""
    path = path_for(API_VERSION, "agentpolicies", namespace, name)
    body = kube.get_or_none(path)
    if body is None:
        return
    ensure_approvers(kube, AgentPolicy.from_k8s(body))
    agents = kube.list(path_for(API_VERSION, "agents", namespace))
    bound = sum(
        1 for a in agents if ((a.get("status") or {}).get("boundPolicyRef") or {}).get("name") == name
    )
    draft = StatusDraft(body.get("status"), body["metadata"].get("generation"))
    draft.set(agents=bound)
    ready(draft, True, "Accepted", f"{bound} agent(s) governed by this policy.")
    patch = draft.patch()
    if patch is not None:
        kube.patch_status(path, patch)
