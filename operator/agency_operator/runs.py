"""Reconciling one AgentRun: admit it, give it an identity, start it, mirror it, end it, clean it up.

Level-based: every call reads the run afresh and moves it one or more steps towards where it should be,
so a call triggered by a timer, a Pod event or an operator restart all do the same thing, and a second
call with nothing new changes nothing. The steps, in order:

1. Admission (until the run starts): resolve the Agent and its AgentPolicy, check model, tools, budget
   and daily budget, check the model credentials exist. A refusal is a condition and an Event; the run
   waits (or, for a budget above its policy's, fails: its spec cannot change).
2. Start: the run's identity (ServiceAccount, Role, bindings), its NetworkPolicy and what the executor
   prepares (the run file), then the executor's process (a Pod, or a local process). `status.startTime`
   is written only after all of them exist, so a restarted operator that finds no startTime redoes the
   (idempotent) start.
3. Mirror: the executor's observation becomes phase, conditions, steps, usage, trace id and result.
4. End: the identity is revoked at once; after the TTL the run (and with it every child) is deleted.

A run that has not started costs three round trips to the API server before its Pod exists: every read
at once (the run, its Agent, the policies, the parent run, and the Secrets the Agent named when the watch
last showed it: see `seen.py`), then every object that does not need another (identity, NetworkPolicy,
run file), then the Pod (the API server refuses a Pod whose ServiceAccount does not exist yet), whose
create answers with what the mirror needs. In a burst, the Agent, policies and Secrets of a run's first
admission are mostly read by another run a moment before (`fresh.py`), which leaves one read, the run's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from agency_operator import events, names
from agency_operator.apply import both, ensure, ensure_all, side_by_side
from agency_operator.budget import daily_refusal, usage_today
from agency_operator.credentials import check_credentials, check_read, secret_names, secret_path
from agency_operator.environment import traceparent
from agency_operator.executors import Executor, Launch, Observation, Progress
from agency_operator.fresh import FreshReads
from agency_operator.identity import build_identity, build_self_binding, grant_child, revoke_identity
from agency_operator.kube import JsonDict, Kube, KubeError, path_for
from agency_operator.metrics import Metrics, StartLaps
from agency_operator.netpol import build_network_policy, signals_rule
from agency_operator.resolve import Refusal, check_agent, policy_for, run_budget
from agency_operator.runfile import build_run_file
from agency_operator.seen import RunHint, Seen
from agency_operator.settings import Settings
from agency_operator.status import StatusDraft, phase_of, ready, result_fields, timestamp
from agency_operator.tally import RunTally, parse_time
from agency_runtime.api.agent import Agent
from agency_runtime.api.common import RunPhase
from agency_runtime.api.conditions import READY
from agency_runtime.api.meta import API_VERSION
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.api.run import AgentRun

#: A run that only waits on its Pod's events is reconciled by the resync this many intervals apart.
QUIET_RESYNCS = 30

ADMITTED = "Admitted"
CREDENTIALS = "CredentialsReady"
IDENTITY = "IdentityReady"


@dataclass
class Context:
    """What every reconcile needs; one per operator process, kept in kopf's memo."""

    kube: Kube
    settings: Settings
    executor: Executor
    metrics: Metrics
    api_endpoints: Sequence[tuple[str, int]] = ()
    seen: Seen = field(default_factory=Seen)
    fresh: FreshReads = field(default_factory=FreshReads)
    locks: dict[str, threading.Lock] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)
    #: When each run's last reconcile ended (monotonic seconds), by `namespace/name`.
    reconciled: dict[str, float] = field(default_factory=dict)

    def lock(self, key: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())


def runs_path(namespace: str, name: str | None = None) -> str:
    return path_for(API_VERSION, "agentruns", namespace, name)


def crash_point(settings: Settings, step: str) -> None:
    """Test hook: die here, as abruptly as a node failure, when the integration test asks for it."""
    if settings.test_crash_after == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Prefetched:
    """What was read beside a run that had not started when a watch last showed it, for its admission:
    all read live, in the same round as the run; `secrets` are those its Agent named when last seen."""

    uid: str
    agent_name: str
    agent: JsonDict | None
    policies: list[JsonDict]
    parent_name: str | None
    parent: JsonDict | None
    secrets: dict[str, JsonDict | None]


@dataclass(frozen=True)
class Admission:
    agent: Agent
    policy: AgentPolicy
    launch: Launch


def reconcile_run(ctx: Context, namespace: str, name: str) -> Refusal | None:
    """Bring one run a step closer to its desired state (safe to call any time, from any trigger).

    Returns the refusal the run waits on (missing agent, policy, credentials, daily budget), if any.
    """
    with ctx.metrics.reconciling("AgentRun"), ctx.lock(f"{namespace}/{name}"):
        return _reconcile_locked(ctx, namespace, name)


def resync_due(
    hint: RunHint | None, event_driven: bool, last: float | None, now: float, interval: float
) -> bool:
    """Pure: whether the periodic resync reconciles a run now (`last`: when its last reconcile ended).

    A started run that is Pending or Running changes only when its process does, and with the pod
    executor every change of the Pod is an event that reconciles the run at once; such a run is only
    looked at every QUIET_RESYNCS intervals, as a safety net. Every other run is due every interval:
    one waiting for admission (Secrets are not watched), for approvals (they time out), a finished one
    (its TTL), and every run of the local executor (a process's end is no event)."""
    if hint is None or not event_driven or last is None:
        return True
    waits_on_its_pod = hint.past_admission and hint.phase in (RunPhase.PENDING.value, RunPhase.RUNNING.value)
    return not waits_on_its_pod or now - last >= interval * QUIET_RESYNCS


def resync_wanted(ctx: Context, namespace: str, name: str) -> bool:
    """Whether the resync reconciles this run now (`resync_due` on what the operator knows of it)."""
    hint, last = ctx.seen.run(namespace, name), ctx.reconciled.get(f"{namespace}/{name}")
    return resync_due(hint, ctx.executor.event_driven, last, time.monotonic(), ctx.settings.resync_seconds)


def _reconcile_locked(ctx: Context, namespace: str, name: str) -> Refusal | None:
    hint = ctx.seen.run(namespace, name)  # a run never reconciled before has no phase yet
    laps = StartLaps(hint.seen_at if hint is not None and hint.phase is None else None)
    body, prefetched = _read(ctx, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    run = AgentRun.from_k8s(body)
    if run.spec.parent_run_ref is not None:  # a delegated run: its parent may read it (and only it)
        grant_child(ctx.kube, namespace, run.spec.parent_run_ref.name, name)
    draft = StatusDraft(body.get("status"), body["metadata"].get("generation"))
    before = draft.get("phase")
    gone = False
    try:
        return _reconcile(ctx, body, run, draft, prefetched, laps)
    except KubeError:
        gone = _gone(ctx, body)  # deleted meanwhile, its children with it: nothing is left to report
        if gone:
            return None
        raise
    finally:
        if not gone:
            _write(ctx, body, run, draft, before)
            ctx.reconciled[f"{namespace}/{name}"] = time.monotonic()


def _read(ctx: Context, namespace: str, name: str) -> tuple[JsonDict | None, Prefetched | None]:
    """The run as it is now; for a run that had not started when last seen, what its admission reads
    too, all in the same round trip."""
    kube, path = ctx.kube, runs_path(namespace, name)
    hint = ctx.seen.run(namespace, name)
    if hint is None or hint.past_admission:
        return kube.get_or_none(path), None
    secrets = ctx.seen.agent_secrets(namespace, hint.agent) or ()
    # Its first admission may share reads sent since the watch showed it; a run that was refused reads
    # live from then on, so what it waits for is seen as soon as it exists (`fresh.py`).
    since = hint.seen_at if hint.phase is None else float("inf")

    def shared(path: str, fetch: Callable[[str], Any]) -> Callable[[], Any]:
        return partial(ctx.fresh.get, path, since, partial(fetch, path))

    reads: dict[str, Callable[[], Any]] = {
        "run": partial(kube.get_or_none, path),
        "agent": shared(path_for(API_VERSION, "agents", namespace, hint.agent), kube.get_or_none),
        "policies": shared(path_for(API_VERSION, "agentpolicies", namespace), kube.list),
    }
    if hint.parent is not None:
        reads["parent"] = partial(kube.get_or_none, runs_path(namespace, hint.parent))
    for secret in secrets:
        reads[f"secret/{secret}"] = shared(secret_path(namespace, secret), kube.get_or_none)
    answers = dict(zip(reads, side_by_side(list(reads.values())), strict=True))
    prefetched = Prefetched(
        uid=hint.uid,
        agent_name=hint.agent,
        agent=answers["agent"],
        policies=answers["policies"],
        parent_name=hint.parent,
        parent=answers.get("parent"),
        secrets={secret: answers[f"secret/{secret}"] for secret in secrets},
    )
    return answers["run"], prefetched


def _gone(ctx: Context, body: JsonDict) -> bool:
    """Whether the run read at the start of a reconcile is deleted (or being deleted, or replaced) now.

    A child created for a run that is deleted meanwhile is taken by the garbage collector, so the next
    request fails (a Pod whose ServiceAccount went is refused); that is the run going, not an error."""
    meta = body["metadata"]
    now = ctx.kube.get_or_none(runs_path(meta["namespace"], meta["name"]))
    return (
        now is None or bool(now["metadata"].get("deletionTimestamp")) or now["metadata"]["uid"] != meta["uid"]
    )


def _write(ctx: Context, body: JsonDict, run: AgentRun, draft: StatusDraft, before: str | None) -> None:
    patch = draft.patch()
    meta = body["metadata"]
    if patch is not None:
        after = ctx.kube.patch_status(runs_path(meta["namespace"], meta["name"]), patch)
        if after is None:
            return  # deleted meanwhile: no Events or metrics about a run that is gone
        ctx.seen.run_written(body, draft.status, after)
    posts = [
        partial(events.post, ctx.kube, body, story.type, story.reason, story.message)
        for story in events.fold(draft.transitions, _event_type)
    ]
    side_by_side(posts)  # one round trip for all of them: the reconcile holds the run's lock meanwhile
    after = draft.get("phase")
    if after != before and after is not None:
        ctx.metrics.run_entered(meta["namespace"], run.spec.agent_ref.name, after)
        if RunPhase(after).finished:
            ctx.metrics.run_finished(
                meta["namespace"],
                run.spec.agent_ref.name,
                after,
                draft.condition_reason(READY) or after,
                _lifetime(meta, draft.get("completionTime")),
                _judge_score(draft.get("judge")),
            )


def _lifetime(meta: Mapping[str, Any], completion: object) -> float | None:
    """Seconds from the run's creation to its completionTime (None when either is missing)."""
    created, ended = parse_time(meta.get("creationTimestamp")), parse_time(completion)
    return None if created is None or ended is None else max(0.0, (ended - created).total_seconds())


def _judge_score(verdict: object) -> float | None:
    """The score of a `status.judge` that scored the run, else None."""
    score = verdict.get("score") if isinstance(verdict, Mapping) and verdict.get("scored") else None
    return float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None


def _event_type(status: str, reason: str) -> str:
    return "Warning" if status == "False" and reason not in ("Revoked", "Succeeded", "Starting") else "Normal"


def _reconcile(
    ctx: Context,
    body: JsonDict,
    run: AgentRun,
    draft: StatusDraft,
    prefetched: Prefetched | None,
    laps: StartLaps,
) -> Refusal | None:
    if run.status.phase is not None and run.status.phase.finished:
        _housekeeping(ctx, body, run, draft)
        return None
    if draft.get("phase") is None:
        draft.set(phase=RunPhase.PENDING.value)
    observed: Observation | None = None  # what starting the process told of it, if it started now
    if draft.get("startTime") is None:
        admission = _admit(ctx, body, run, draft, prefetched=prefetched)
        if isinstance(admission, Refusal):
            return None if admission.permanent else admission
        laps.lap("admission")
        started = _start(ctx, admission, draft, laps)
        if isinstance(started, Refusal):
            return started
        observed = started
    _mirror(ctx, body, run, draft, observed if observed is not None else ctx.executor.observe(body))
    return None


def _refuse(draft: StatusDraft, type_: str, refusal: Refusal) -> Refusal:
    draft.condition(type_, False, refusal.reason, refusal.message)
    ready(draft, False, refusal.reason, refusal.message)
    if refusal.permanent:
        draft.set(phase=RunPhase.FAILED.value, completionTime=timestamp(datetime.now(UTC)))
    return refusal


def _admit(
    ctx: Context,
    body: JsonDict,
    run: AgentRun,
    draft: StatusDraft,
    *,
    after_start: bool = False,
    prefetched: Prefetched | None = None,
) -> Admission | Refusal:
    """The agent, policy and launch of a run that may start now, or why not (with conditions set).

    `after_start`: the run continues after an approval; it was counted against the daily budget when it
    started, and its next process joins its own trace. `prefetched`: what `_read` read beside the run;
    whatever it lacks is read here.
    """
    kube, ns = ctx.kube, run.metadata.namespace or ""
    agent_name = run.spec.agent_ref.name
    if prefetched is not None and (prefetched.uid, prefetched.agent_name) != (run.metadata.uid, agent_name):
        prefetched = None  # the run was replaced by another of the same name since the watch saw it
    if prefetched is not None:
        agent_body, policy_bodies = prefetched.agent, prefetched.policies
    else:  # the Agent and the namespace's policies do not depend on each other: read side by side
        agent_body, policy_bodies = both(
            lambda: kube.get_or_none(path_for(API_VERSION, "agents", ns, agent_name)),
            lambda: kube.list(path_for(API_VERSION, "agentpolicies", ns)),
        )
    if agent_body is None:
        return _refuse(
            draft,
            ADMITTED,
            Refusal(
                "AgentNotFound",
                f"AgentRun {run.metadata.name} runs Agent {agent_name} (spec.agentRef.name), which does "
                f"not exist in namespace {ns}; the run waits until it does.",
            ),
        )
    agent = Agent.from_k8s(agent_body)
    policies = [AgentPolicy.from_k8s(p) for p in policy_bodies]
    policy = policy_for(agent, policies)
    if isinstance(policy, Refusal):
        return _refuse(draft, ADMITTED, policy)
    refusal = check_agent(agent, policy)
    budget = run_budget(run, policy)
    if refusal is None and isinstance(budget, Refusal):
        refusal = budget
    if refusal is None and policy.spec.budgets.per_agent_daily is not None and not after_start:
        runs = [RunTally.from_k8s(r) for r in kube.list(runs_path(ns))]
        used = usage_today(runs, agent_name, datetime.now(UTC), exclude=run.metadata.name)
        refusal = daily_refusal(agent_name, policy.metadata.name, policy.spec.budgets.per_agent_daily, used)
    if refusal is not None:
        return _refuse(draft, ADMITTED, refusal)
    if isinstance(budget, Refusal):  # unreachable: a budget refusal is the refusal above
        return _refuse(draft, ADMITTED, budget)
    draft.condition(
        ADMITTED, True, "Admitted", f"Agent {agent_name} is governed by AgentPolicy {policy.metadata.name}."
    )
    draft.set(boundPolicyRef={"name": policy.metadata.name})
    parent_ref = run.spec.parent_run_ref if not after_start else None
    parent_name = parent_ref.name if parent_ref is not None else None
    if (
        prefetched is not None
        and set(secret_names(agent)) <= prefetched.secrets.keys()
        and parent_name == prefetched.parent_name
    ):
        missing, parent = check_read(agent, prefetched.secrets), prefetched.parent
    else:  # the model Secrets and the parent run (whose trace a delegated run joins): side by side again
        missing, parent = both(
            lambda: check_credentials(kube, agent),
            lambda: kube.get_or_none(runs_path(ns, parent_name)) if parent_name is not None else None,
        )
    if missing is not None:
        return _refuse(draft, CREDENTIALS, missing)
    draft.condition(CREDENTIALS, True, "Found", "The model credentials exist.")
    parent_trace = run.status.trace_id if after_start else None
    if parent_ref is not None:
        parent_trace = ((parent or {}).get("status") or {}).get("traceId")
    launch = Launch(
        body=body,
        run=run,
        agent=agent,
        policy=policy,
        budget=budget,
        run_file=build_run_file(run, agent, policy),
        trace_parent=traceparent(run, parent_trace),
    )
    return Admission(agent, policy, launch)


def _start(
    ctx: Context, admission: Admission, draft: StatusDraft, laps: StartLaps
) -> Refusal | Observation | None:
    """Make the run's identity, NetworkPolicy and process. A refusal if it waits (conditions set), else
    where the process is, when starting it told (see `Executor.start`). Each stage is timed in `laps`,
    observed once the run has started."""
    body, policy = admission.launch.body, admission.policy
    network_policy = build_network_policy(
        body,
        admission.agent,
        policy,
        otlp_endpoint=ctx.settings.otlp_endpoint,
        api_endpoints=ctx.api_endpoints,
        signals=signals_rule(
            ctx.settings.signals_peer_namespace,
            ctx.settings.signals_peer_labels,
            ctx.settings.signals_port if ctx.settings.signals_url_for_runs() else 0,
        ),
    )
    # The identity, the NetworkPolicy and the run file do not depend on each other: created side by side.
    prepared = ctx.executor.prepare(admission.launch)
    try:
        ensure_all(ctx.kube, [*build_identity(body, policy), network_policy, *prepared])
    except KubeError as err:
        return _identity_refused(draft, policy, err)
    crash_point(ctx.settings, "serviceaccount")
    laps.lap("identity")

    # Then the process, which needs only its ServiceAccount, beside the binding to the run's own Role,
    # which needs only that Role (identity.py): both exist now. The runtime's first request comes seconds
    # after its Pod is made, the binding's answer a few milliseconds after.
    def bind_own_role() -> KubeError | None:
        try:
            ensure(ctx.kube, build_self_binding(body))
        except KubeError as err:
            return err
        return None

    def start_process() -> Observation | None:
        observed = ctx.executor.start(admission.launch)
        laps.lap("process")
        if observed is not None:  # its Pod's ADDED event comes while the binding is being made
            ctx.seen.pod_created(body, observed.version)
        return observed

    started, refused = both(start_process, bind_own_role)
    if refused is not None:
        if refused.status != 403:
            raise refused  # the Role went meanwhile, or the API server failed: the next reconcile retries
        return _identity_refused(draft, policy, refused)
    crash_point(ctx.settings, "start")
    grants = ", ".join(g.name for g in policy.spec.identity.cluster_roles) or "none"
    draft.condition(
        IDENTITY,
        True,
        "Bound",
        f"ServiceAccount {names.service_account(body['metadata']['name'])} with its own Role; "
        f"ClusterRoles from AgentPolicy {policy.metadata.name}: {grants}.",
    )
    draft.set(startTime=timestamp(datetime.now(UTC)))
    ctx.metrics.run_started(laps)
    return started


def _identity_refused(draft: StatusDraft, policy: AgentPolicy, err: KubeError) -> Refusal:
    """Why the run's identity could not be made, when the API server said so; other errors raise."""
    if err.not_found:  # a namespace the policy grants ClusterRoles in does not exist (yet)
        return _refuse(
            draft,
            IDENTITY,
            Refusal(
                "IdentityNamespaceNotFound",
                f"The run's identity could not be made: {err.message}. AgentPolicy "
                f"{policy.metadata.name} binds ClusterRoles in namespaces that must exist "
                "(spec.identity.clusterRoles[].namespaces). The run waits until they do.",
            ),
        )
    if err.status != 403:
        raise err
    grants = ", ".join(g.name for g in policy.spec.identity.cluster_roles) or "none"
    return _refuse(
        draft,
        IDENTITY,
        Refusal(
            "IdentityForbidden",
            f"The API server refused the run's identity: {err.message}. "
            f"AgentPolicy {policy.metadata.name} grants ClusterRoles {grants}; the operator may only "
            "bind the ClusterRoles its installation lists (the chart's bindable roles). The run waits.",
        ),
    )


def _mirror(ctx: Context, body: JsonDict, run: AgentRun, draft: StatusDraft, seen: Observation) -> None:
    if seen.progress is Progress.PENDING:
        ready(draft, False, "Starting", seen.detail or "The runtime is starting.")
        return
    if seen.progress is Progress.RUNNING:
        if draft.get("phase") != RunPhase.WAITING_FOR_APPROVAL.value:
            draft.set(phase=RunPhase.RUNNING.value)
        ready(draft, True, "Running", "The runtime is running.")
        return
    if (
        seen.progress is Progress.FINISHED
        and (seen.result or {}).get("phase") == RunPhase.WAITING_FOR_APPROVAL
    ):
        _wait_or_resume(ctx, body, run, draft, seen)
        return
    if seen.progress is Progress.ABSENT:
        phase, message = RunPhase.FAILED, "The run's runtime disappeared (its Pod or process was removed)."
        reason = "RuntimeLost"
    else:
        phase = phase_of(seen.result)
        result = seen.result or {}
        if seen.result is not None:
            draft.set(**result_fields(seen.result))
        reason = str(result.get("reason") or phase.value)
        message = str(result.get("message") or seen.detail or f"The run ended: {phase.value}.")
        if seen.result is None and seen.exit_code is not None:
            message = f"The runtime exited with code {seen.exit_code} without a result. {seen.detail}".strip()
            reason = "RuntimeFailed"
    draft.set(phase=phase.value, completionTime=timestamp(datetime.now(UTC)))
    ready(draft, phase is RunPhase.SUCCEEDED, _reason(reason), message)
    usage = draft.get("usage") or {}
    ctx.metrics.run_used(
        run.metadata.namespace or "",
        run.spec.agent_ref.name,
        int(usage.get("inputTokens", 0)),
        int(usage.get("outputTokens", 0)),
        float(usage.get("costUSD", 0.0)),
    )
    _revoke(ctx, body, draft)


def undecided(run: AgentRun, status: Mapping[str, Any], result: Mapping[str, Any], timeout: int) -> list[str]:
    """Proposals the run waits on: shown in status.pendingApprovals (or its result), not decided in
    spec.approvals, and not past the policy's approval timeout (an expired proposal counts as rejected,
    which the runtime tells the model when it continues)."""
    decided = {a.proposal_id for a in run.spec.approvals}
    now = datetime.now(UTC)
    waiting: dict[str, datetime | None] = {}
    for pending in status.get("pendingApprovals") or []:
        waiting[pending["proposalId"]] = parse_time(pending.get("requestedAt"))
    proposal = result.get("proposal") or {}
    if isinstance(proposal, Mapping) and proposal.get("proposalId"):
        waiting.setdefault(str(proposal["proposalId"]), None)
    return sorted(
        pid
        for pid, asked in waiting.items()
        if pid not in decided and (asked is None or now < asked + timedelta(seconds=timeout))
    )


def _wait_or_resume(
    ctx: Context, body: JsonDict, run: AgentRun, draft: StatusDraft, seen: Observation
) -> None:
    """The process stopped to wait for approvals: wait, or start the next process once they are decided."""
    result = seen.result or {}
    draft.set(**result_fields(result))
    policy_ref = run.status.bound_policy_ref
    policy_body = (
        ctx.kube.get_or_none(path_for(API_VERSION, "agentpolicies", run.metadata.namespace, policy_ref.name))
        if policy_ref is not None
        else None
    )
    timeout = AgentPolicy.from_k8s(policy_body).spec.approvals.timeout_seconds if policy_body else 86400
    waiting = undecided(run, draft.status, result, timeout)
    if waiting:
        draft.set(phase=RunPhase.WAITING_FOR_APPROVAL.value)
        ready(
            draft,
            False,
            "WaitingForApproval",
            f"Proposed tool call(s) {', '.join(waiting)} wait for a decision in spec.approvals "
            "(see status.pendingApprovals); the run continues in a new process once decided.",
        )
        return
    admission = _admit(ctx, body, run, StatusDraft(draft.status, None), after_start=True)
    if isinstance(admission, Refusal):
        ready(draft, False, admission.reason, admission.message)
        return
    launch = replace(admission.launch, attempt=seen.attempt + 1)
    ctx.executor.start(launch)
    draft.set(phase=RunPhase.RUNNING.value)
    ready(draft, True, "Resumed", f"Decisions recorded; the run continues (process {launch.attempt + 1}).")


def _reason(text: str) -> str:
    """A CamelCase condition reason from what the runtime said (it may send any word)."""
    cleaned = "".join(
        part[:1].upper() + part[1:] for part in text.replace("-", " ").replace("_", " ").split()
    )
    cleaned = "".join(ch for ch in cleaned if ch.isalnum())
    return cleaned if cleaned[:1].isalpha() else "Finished"


def _revoke(ctx: Context, body: JsonDict, draft: StatusDraft) -> None:
    if draft.condition_reason(IDENTITY) == "Revoked":
        return
    revoke_identity(ctx.kube, body)
    draft.condition(
        IDENTITY,
        False,
        "Revoked",
        "The run ended: its ServiceAccount and bindings are deleted, its tokens rejected.",
    )


def _ttl(ctx: Context, run: AgentRun) -> int:
    if run.spec.ttl_seconds_after_finished is not None:
        return run.spec.ttl_seconds_after_finished
    if run.status.bound_policy_ref is not None:
        policy = ctx.kube.get_or_none(
            path_for(API_VERSION, "agentpolicies", run.metadata.namespace, run.status.bound_policy_ref.name)
        )
        if policy is not None:
            return AgentPolicy.from_k8s(policy).spec.ttl_seconds_after_finished
    return ctx.settings.finished_run_ttl_seconds


def _housekeeping(ctx: Context, body: JsonDict, run: AgentRun, draft: StatusDraft) -> None:
    """A finished run: make sure its identity is gone, and delete it once its TTL has passed."""
    if draft.condition_reason(IDENTITY) is not None:
        _revoke(ctx, body, draft)
    finished = parse_time(draft.get("completionTime")) or run.metadata.creation_timestamp
    if finished is None:
        return
    if datetime.now(UTC) >= finished + timedelta(seconds=_ttl(ctx, run)):
        ctx.kube.delete(runs_path(run.metadata.namespace or "", run.metadata.name))


def forget_run(ctx: Context, body: Mapping[str, Any]) -> None:
    """A run was deleted: stop its process and remove bindings the garbage collector cannot reach."""
    ctx.executor.stop(body)
    revoke_identity(ctx.kube, body)
    ctx.seen.run_gone((body["metadata"]["namespace"], body["metadata"]["name"]))
    with ctx.guard:
        ctx.locks.pop(f"{body['metadata']['namespace']}/{body['metadata']['name']}", None)
        ctx.reconciled.pop(f"{body['metadata']['namespace']}/{body['metadata']['name']}", None)
