"""Agent and AgentPolicy status: which policy binds each agent, whether it can run, what it used today.

Recomputed every time from the Agent, its namespace's policies and its model Secrets, read afresh, and
from its runs as the watch last showed them (`seen.py`: listed once after the operator starts, then kept
by the watch), so a policy edit, a new Secret or a finished run all show up the next time an agent is
looked at; a policy change looks at every agent in its namespace at once. "Afresh" is the rule of
`fresh.py`: an Agent queued by an event may share a read the runs' admissions sent after that event (and
after the namespace's last policy event; of the Agent itself, only one sent after its own last status
write, whose answer the next reconcile's patch is computed against). Read by every Agent reconcile,
they were 1.5 of a run's 11.5 requests in a burst; and the policies' LIST, sent after a quiet moment,
waited ~90 ms in kube-apiserver (a consistent LIST from its watch cache waits until the cache has caught
up with etcd), and so did the LIST of the run admitted next: run start p99 93 ms before, 39 ms shared.

The periodic resync looks again at an Agent that is not Ready every interval (it may wait on a Secret,
and Secrets are not watched), at every Agent when the UTC day rolls (its usage today starts again), and
at a Ready one only every QUIET_RESYNCS intervals otherwise: everything else that moves its status is
an event (its own, its policies', its runs'), and 1,000 Agents looked at every 10 s were 300 requests a
second in an idle cluster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from agency_operator import events
from agency_operator.apply import side_by_side
from agency_operator.approvers import ensure_approvers
from agency_operator.budget import daily_refusal, day, usage_today
from agency_operator.credentials import check_read, secret_names, secret_path
from agency_operator.fresh import FreshReads
from agency_operator.kube import JsonDict, Kube, KubeError, path_for
from agency_operator.resolve import Refusal, check_agent, policy_for
from agency_operator.seen import Seen
from agency_operator.status import StatusDraft, ready, timestamp
from agency_operator.tally import RunTally
from agency_runtime.api.agent import Agent
from agency_runtime.api.meta import API_VERSION
from agency_runtime.api.policy import AgentPolicy

T = TypeVar("T")

BUDGET = "DailyBudgetAvailable"
#: A Ready Agent is looked at by the resync this many intervals apart (a safety net), unless its day rolled.
QUIET_RESYNCS = 30


def agent_status(
    agent: Agent,
    current: JsonDict | None,
    policies: Sequence[AgentPolicy],
    runs: Sequence[RunTally],
    credentials: Refusal | None,
    now: datetime,
) -> StatusDraft:
    """The agent's next status (pure): bound policy, Ready, daily budget, usage today, runs in flight."""
    draft = StatusDraft(current, agent.metadata.generation)
    draft.set(skills=None)  # advertised again below only if the agent is Ready
    name = agent.metadata.name
    mine = [r for r in runs if r.agent == name]
    draft.set(runsInFlight=sum(1 for r in mine if not r.finished))
    started = [r for r in mine if r.start_time is not None]
    if started:
        last = max(started, key=lambda r: (r.start_time or now, r.name))
        draft.set(
            lastRun={
                key: value
                for key, value in {
                    "name": last.name,
                    "phase": last.phase,
                    "startTime": timestamp(last.start_time) if last.start_time else None,
                    "completionTime": timestamp(last.completion_time) if last.completion_time else None,
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


def agent_runs(kube: Kube, namespace: str, agent: str) -> list[JsonDict]:
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
    return [r for r in listed if r["spec"]["agentRef"]["name"] == agent]


def tallies(kube: Kube, seen: Seen, namespace: str, agent: str) -> list[RunTally]:
    """The Agent's runs as the watch showed them; listed first if they were not all seen yet."""
    known = seen.tallies(namespace, agent)
    if known is not None:
        return known
    sent_at = time.monotonic()
    return seen.tally_listed(namespace, agent, agent_runs(kube, namespace, agent), sent_at)


@dataclass(frozen=True)
class Looked:
    """When the resync (or anything) last reconciled an Agent: monotonic seconds and the UTC day."""

    at: float
    day: str


def resync_due(ready: bool | None, last: Looked | None, now: float, today: str, interval: float) -> bool:
    """Pure: whether the periodic resync reconciles an Agent now (see module doc)."""
    if ready is not True or last is None or last.day != today:
        return True
    return now - last.at >= interval * QUIET_RESYNCS


def looked_now() -> Looked:
    return Looked(time.monotonic(), day(datetime.now(UTC)))


@dataclass(frozen=True)
class Since:
    """How old a shared read (`fresh.py`) an Agent's reconcile may use, in monotonic seconds: of the Agent
    itself, one sent after its last status write and after what queued it; of its policies and Secrets,
    one sent after what queued it and after the namespace's last policy event. The default: none."""

    agent: float = math.inf
    others: float = math.inf


def reconcile_agent(
    kube: Kube, seen: Seen, namespace: str, name: str, fresh: FreshReads | None = None, since: Since = Since()
) -> JsonDict | None:
    """Write the Agent's status if it changed; the Agent as that write left it (None: nothing written).

    With `fresh`, a read of the Agent, its policies or its Secrets another reconcile sent recently enough
    (`since`) is used rather than sent again: in a burst, the runs' admissions read the same."""

    def read(path: str, fetch: Callable[[str], T], after: float) -> T:
        return fetch(path) if fresh is None else fresh.get(path, after, partial(fetch, path))

    body = read(path_for(API_VERSION, "agents", namespace, name), kube.get_or_none, since.agent)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    agent = Agent.from_k8s(body)
    listed = read(path_for(API_VERSION, "agentpolicies", namespace), kube.list, since.others)
    policies = [AgentPolicy.from_k8s(p) for p in listed]
    runs = tallies(kube, seen, namespace, name)
    names = secret_names(agent)
    secrets = side_by_side(
        [partial(read, secret_path(namespace, n), kube.get_or_none, since.others) for n in names]
    )
    credentials = check_read(agent, dict(zip(names, secrets, strict=True)))
    draft = agent_status(agent, body.get("status"), policies, runs, credentials, datetime.now(UTC))
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
