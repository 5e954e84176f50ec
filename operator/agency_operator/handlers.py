"""The kopf handlers: registration only. Each one hands its object to the module that decides.

Registered by `register(registry, settings)` rather than at import, so that one Settings object, read
once in `__main__`, configures everything; the startup handler configures kopf from it and puts it (with
the API client, executor, metrics and resync) into kopf's memo.

Level, not edge: every AgentRun event (including the listing kopf does when it starts, which is what
`@kopf.on.resume` would give), every event of a run's Pod and a periodic resync (`resync.py`) all call
the same `runs.reconcile_run`, which reads the run afresh and is idempotent. The run and Pod handlers
(and the Agent handler) are async and only put a key on a work queue (`workqueue.py`) that
`Settings.workers` threads (64 by default) reconcile from, so a burst of runs waits as keys, not as kopf
tasks holding each event's body. The event of the operator's own status write (its resourceVersion is
the one the write answered) queues nothing: the reconcile that wrote it already saw everything it shows;
so does a run Pod's ADDED event that shows it as the answer to its create did (the reconcile that made
it mirrored that). The resync queues the runs it finds due on the same queue. A run event that moves
what its Agent's status counts (a new run, its phase, start or usage) queues the Agent within
AGENT_STATUS_LAG.
`on.event` keeps no progress annotations on the objects, so a reconcile that changes nothing writes
nothing. A waiting run says why in its conditions and Events rather than through kopf's
TemporaryError retries.

No finalizers: every child of a run in its namespace is owned by it and goes with it (garbage
collection); what cannot be owned (bindings in other namespaces, a local process) is removed on the
run's DELETED event, and a startup sweep catches deletions that happened while the operator was down.
"""

from __future__ import annotations

import gc
import math
import time
from typing import Any, Literal

import kopf

from agency_operator import admission, agents, apply, cleanup, names, runs, schedules, served, serving
from agency_operator.essence import NoEssence
from agency_operator.executors import Executor
from agency_operator.executors.local import LocalExecutor
from agency_operator.executors.pod import PodExecutor
from agency_operator.kube import Kube
from agency_operator.metrics import Metrics
from agency_operator.resync import Resync
from agency_operator.settings import ExecutorKind, Settings
from agency_operator.triggers.history import SCHEDULE_LABEL
from agency_operator.wakeups import Wakeups
from agency_operator.workqueue import WorkQueue

GROUP, VERSION = "agency.dev", "v1alpha1"
PREFIX = "agency.dev"
#: Threads that run kopf's sync handlers (policies, schedules); runs and Agents are reconciled by the
#: work queue's threads (`Settings.workers`).
KOPF_WORKERS = 16

#: An Agent's status (runs in flight, last run, usage today) follows its runs' events at most this many
#: seconds late, and is reconciled at most once per this interval for them: done for each run event, an
#: Agent reconcile (then listing every run of the Agent) slowed the next run's start (p50 36 -> 77 ms).
AGENT_STATUS_LAG = 2.0

#: What a work-queue key asks for: reconcile a run, an Agent, or the schedule a run belongs to.
Work = tuple[Literal["run", "agent", "schedule"], str, str]


def _context(memo: Any) -> runs.Context:
    ctx: runs.Context = memo.ctx
    return ctx


def _agent(memo: Any, namespace: str | None, name: str | None, queued_at: float = math.inf) -> None:
    """Reconcile an Agent; `queued_at`: when what queued it happened (reads sent since may be shared)."""
    ctx, key = _context(memo), (namespace or "", name or "")
    with ctx.metrics.reconciling("Agent"), ctx.lock(f"agent/{namespace}/{name}"):
        looked: dict[tuple[str, str], agents.Looked] = memo.agents_looked
        others = max(queued_at, memo.policies_seen.get(key[0], 0.0))
        last = looked.get(key)
        since = agents.Since(agent=max(others, last.at if last is not None else 0.0), others=others)
        written = agents.reconcile_agent(ctx.kube, ctx.seen, *key, fresh=ctx.fresh, since=since)
        looked[key] = agents.looked_now()
    if written is not None:
        ctx.seen.agent_written(written)  # its watch event is this write's echo: nothing to do again


def _resync_agent(memo: Any, namespace: str, name: str) -> None:
    """The resync's reconcile of one Agent: only when `agents.resync_due` says so."""
    ctx, now, last = _context(memo), agents.looked_now(), memo.agents_looked.get((namespace, name))
    ready = ctx.seen.agent_ready(namespace, name)
    if agents.resync_due(ready, last, now.at, now.day, ctx.settings.resync_seconds):
        _agent(memo, namespace, name)


def _resync_run(memo: Any, namespace: str, name: str) -> None:
    """The resync's reconcile of one run, when `runs.resync_due` says so: queued, not done here, so a run
    whose event queued it already (a burst not yet worked through) is reconciled once, not twice."""
    if runs.resync_wanted(_context(memo), namespace, name):
        _queue(memo).add(("run", namespace, name))


def _runs_listed(memo: Any, namespace: str | None, listed: set[tuple[str, str]], sent_at: float) -> None:
    """The resync listed every run: forget those gone without a DELETED event; their Agents count again."""
    for agent_namespace, agent in _context(memo).seen.prune(namespace, listed, sent_at):
        memo.agent_wakeups.arm_once(f"{agent_namespace}/{agent}", AGENT_STATUS_LAG)


def _schedule(memo: Any, namespace: str | None, name: str | None) -> None:
    ctx = _context(memo)
    with ctx.metrics.reconciling("AgentSchedule"), ctx.lock(f"schedule/{namespace}/{name}"):
        next_slot_in = schedules.reconcile_schedule(
            ctx.kube,
            namespace or "",
            name or "",
            memo.clock,
            lambda step: runs.crash_point(ctx.settings, step),
        )
    if next_slot_in is not None:  # reconcile again right at the next slot, not at the next resync
        memo.wakeups.arm(f"{namespace}/{name}", next_slot_in)


def _work(memo: Any, key: Work) -> None:
    what, namespace, name = key
    if what == "run":
        runs.reconcile_run(_context(memo), namespace, name)
    elif what == "agent":
        _agent(memo, namespace, name, memo.agents_queued.pop((namespace, name), math.inf))
    else:
        _schedule(memo, namespace, name)


def _queue(memo: Any) -> WorkQueue[Work]:
    queue: WorkQueue[Work] = memo.queue
    return queue


def _queue_agent(memo: Any, key: str, lag: float = 0.0) -> None:
    """Queue an Agent's reconcile for something that happened `lag` seconds ago: reads sent since then
    may be shared (of the Agent, only those after its last status write too; see `_agent`)."""
    namespace, name = key.split("/", 1)
    queued: dict[tuple[str, str], float] = memo.agents_queued
    caused = time.monotonic() - lag
    queued[(namespace, name)] = max(queued.get((namespace, name), caused), caused)  # the latest cause
    _queue(memo).add(("agent", namespace, name))


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    @kopf.on.startup(id="startup", registry=registry)
    def startup(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
        configure = settings
        configure.watching.server_timeout = app.watch_server_timeout_seconds
        configure.watching.client_timeout = app.watch_client_timeout_seconds
        configure.watching.connect_timeout = 30
        configure.persistence.finalizer = f"{PREFIX}/finalizer"
        configure.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        configure.persistence.diffbase_storage = NoEssence()  # no handler compares states (essence.py)
        configure.posting.enabled = False  # the operator posts its own Events, about what matters to users
        configure.execution.max_workers = KOPF_WORKERS
        # A run's kopf worker is done once its key is queued: let it go soon rather than idle for 5 s.
        configure.queueing.idle_timeout = 1.0
        admission.configure(configure, app)  # the webhook, when AGENCY_WEBHOOK_PORT is set
        kube = Kube.from_environment()
        served.wait_until_served(kube, app.namespaces)
        executor: Executor = (
            LocalExecutor(kube, app) if app.executor is ExecutorKind.LOCAL else PodExecutor(kube, app)
        )
        metrics = Metrics()
        apply.set_threads(app.workers)
        memo.queue = WorkQueue(lambda key: _work(memo, key), workers=app.workers)
        metrics.queue_depth.set_function(lambda: len(_queue(memo)))
        metrics.serve(app.metrics_port)
        memo.ctx = runs.Context(
            kube=kube,
            settings=app,
            executor=executor,
            metrics=metrics,
            api_endpoints=cleanup.api_endpoints(kube, app),
        )
        swept = cleanup.sweep_orphans(kube)
        local_swept = executor.sweep()
        memo.clock = (
            schedules.file_clock(app.test_clock_file) if app.test_clock_file else schedules.real_clock
        )
        memo.wakeups = Wakeups(lambda key: _schedule(memo, *key.split("/", 1)))
        memo.agents_looked = {}
        memo.agents_queued = {}  # (namespace, Agent) -> when it was last queued (monotonic seconds)
        memo.policies_seen = {}  # namespace -> when its last AgentPolicy event came (monotonic seconds)
        # A run event armed it AGENT_STATUS_LAG ago; what the run changed is in the watch's tallies.
        memo.agent_wakeups = Wakeups(lambda key: _queue_agent(memo, key, AGENT_STATUS_LAG), workers=1)
        memo.resync = Resync(
            kube,
            app.namespaces,
            app.resync_seconds,
            {
                "agentruns": lambda ns, name: _resync_run(memo, ns, name),
                "agents": lambda ns, name: _resync_agent(memo, ns, name),
                "agentschedules": lambda ns, name: _schedule(memo, ns, name),
            },
            listed={"agentruns": lambda ns, listed, sent_at: _runs_listed(memo, ns, listed, sent_at)},
        )
        memo.resync.start()
        # What start-up made (modules, classes, clients) lives as long as the operator. Frozen out of the
        # cyclic collector, a full collection no longer walks it: those walks were 40-80 ms pauses of
        # every thread, in the middle of whichever runs were starting then.
        gc.freeze()
        logger.info(
            "operator started",
            extra={
                "executor": app.executor.value,
                "namespaces": list(app.namespaces),
                "orphans_removed": swept,
                "orphaned_runs_removed": local_swept,
            },
        )

    app = settings
    admission.register(registry, app)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """Log in as the `kubernetes` client does: KUBECONFIG, or the in-cluster ServiceAccount."""
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.startup(id="serve", registry=registry)
    async def serve(memo: Any, logger: kopf.Logger, **_: Any) -> None:
        """The signal endpoint, in kopf's loop (a handler of its own: `startup` runs in a thread)."""
        memo.server = await serving.start(app)
        if memo.server is not None:
            logger.info("serving signals", extra={"port": memo.server.port})

    @kopf.on.cleanup(id="stop-serving", registry=registry)
    async def stop_serving(memo: Any, **_: Any) -> None:
        server = getattr(memo, "server", None)
        if server is not None:
            await server.stop()

    @kopf.on.cleanup(id="shutdown", registry=registry)
    def shutdown(memo: Any, **_: Any) -> None:
        queue = getattr(memo, "queue", None)
        if queue is not None:
            queue.stop()
        resync = getattr(memo, "resync", None)
        if resync is not None:
            resync.stop()
        for name in ("wakeups", "agent_wakeups"):
            wakeups = getattr(memo, name, None)
            if wakeups is not None:
                wakeups.stop()
        ctx = getattr(memo, "ctx", None)
        if ctx is not None:
            ctx.kube.close()

    # ----- AgentRun ------------------------------------------------------------------------------
    def deleted(type: str | None, **_: Any) -> bool:
        return type == "DELETED"

    def not_deleted(type: str | None, **_: Any) -> bool:
        return type != "DELETED"

    @kopf.on.event(GROUP, VERSION, "agentruns", id="agentrun-event", when=not_deleted, registry=registry)
    async def run_event(body: kopf.Body, memo: Any, **_: Any) -> None:
        namespace, name, seen = body.metadata.namespace or "", body.metadata.name or "", _context(memo).seen
        echo = seen.run_is_echo(body)  # the run as the operator's own status write left it
        if seen.run_seen(body):  # lets the reconcile read what the run's start needs in one round
            agent = body.spec.get("agentRef", {}).get("name", "")
            memo.agent_wakeups.arm_once(f"{namespace}/{agent}", AGENT_STATUS_LAG)  # what it counts moved
        if not echo:
            _queue(memo).add(("run", namespace, name))
        _schedule_of(memo, body)

    @kopf.on.event(GROUP, VERSION, "agentruns", id="agentrun-deleted", when=deleted, registry=registry)
    def run_deleted(body: kopf.Body, memo: Any, **_: Any) -> None:
        runs.forget_run(_context(memo), body)  # needs the body: the run cannot be read any more
        agent = body.spec.get("agentRef", {}).get("name", "")
        memo.agent_wakeups.arm_once(f"{body.metadata.namespace}/{agent}", AGENT_STATUS_LAG)  # one fewer
        _schedule_of(memo, body)

    def _schedule_of(memo: Any, body: kopf.Body) -> None:
        schedule = body.metadata.labels.get(SCHEDULE_LABEL)
        if schedule:  # a run that finished or went may let its schedule go on (Forbid, history, status)
            _queue(memo).add(("schedule", body.metadata.namespace or "", schedule))

    @kopf.on.event(
        "",
        "v1",
        "pods",
        labels={names.MANAGED_BY: names.OPERATOR, names.COMPONENT_LABEL: "runtime"},
        id="run-pod-event",
        registry=registry,
    )
    async def pod_event(body: kopf.Body, memo: Any, **_: Any) -> None:
        run = body.metadata.labels.get(names.RUN_LABEL)
        # The Pod as its create answered, which the reconcile that made it mirrored: nothing new.
        if run and not _context(memo).seen.pod_is_echo(body, run):
            _queue(memo).add(("run", body.metadata.namespace or "", run))

    # ----- AgentSchedule -------------------------------------------------------------------------
    @kopf.on.event(GROUP, VERSION, "agentschedules", id="agentschedule-event", registry=registry)
    def schedule_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
        if type != "DELETED":  # its runs are owned by it and go with it
            _schedule(memo, body.metadata.namespace, body.metadata.name)

    # ----- Agent and AgentPolicy -----------------------------------------------------------------
    @kopf.on.event(GROUP, VERSION, "agents", id="agent-event", registry=registry)
    async def agent_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
        ctx, namespace, name = _context(memo), body.metadata.namespace or "", body.metadata.name or ""
        if type == "DELETED":
            ctx.seen.agent_gone((namespace, name))
            memo.agents_looked.pop((namespace, name), None)
        elif not ctx.seen.agent_is_echo(body):  # not merely its own status write coming back
            ctx.seen.agent_seen(body)  # which Secrets its runs' admission reads beside the run
            # Queued with the runs: its status counts their runs (whose events queue it too), so in a
            # burst it waits its turn rather than being reconciled again after each one started.
            _queue_agent(memo, f"{namespace}/{name}")

    @kopf.on.event(GROUP, VERSION, "agentpolicies", id="agentpolicy-event", registry=registry)
    def policy_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
        ctx, namespace = _context(memo), body.metadata.namespace or ""
        memo.policies_seen[namespace] = time.monotonic()  # no Agent's status may use a read from before
        for agent in ctx.kube.list(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/agents"):
            _agent(memo, namespace, agent["metadata"]["name"])
        if type != "DELETED":
            with ctx.metrics.reconciling("AgentPolicy"):
                agents.reconcile_policy(ctx.kube, namespace, body.metadata.name or "")
