"""Prometheus metrics of the operator: runs by phase, reconcile latency, run start by stage, tokens and
cost by agent.

Counters count what this operator process saw happen (they restart from zero with it, as Prometheus
expects); the reconcile histogram tells a platform owner how long the operator takes per object kind, the
run-start histogram where a run's start spends its time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

#: The stages of a run's start, in the order they happen (`agency_run_start_stage_seconds`):
#: queued: from the watch event that first showed the run until a reconcile thread took it (only when that
#: first reconcile is the one that starts it: a run that waited for its Agent or credentials waited for
#: those, not for a thread); admission: reading the run, its Agent, the policies and the model Secrets, and
#: checking them; identity: its ServiceAccount, Role and bindings, NetworkPolicy and run file created;
#: process: its Pod created (or its local process spawned).
START_STAGES = ("queued", "admission", "identity", "process")


#: A run lasts from seconds (an answer) to a day (waiting for an approval).
RUN_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
JUDGE_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class StartLaps:
    """The stages of one reconcile that may start a run, timed as they end (monotonic seconds)."""

    def __init__(self, queued_at: float | None) -> None:
        self.last = time.monotonic()
        self.laps: list[tuple[str, float]] = []
        if queued_at is not None:
            self.laps.append(("queued", max(0.0, self.last - queued_at)))

    def lap(self, stage: str) -> None:
        """The stage `stage` ends now (it began when the one before it ended)."""
        now = time.monotonic()
        self.laps.append((stage, now - self.last))
        self.last = now


class Metrics:
    """The operator's metrics, registered in one registry (the default one unless a test passes its own)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.run_phases = Counter(
            "agency_run_phase_transitions",
            "AgentRuns that entered a phase",
            ["namespace", "agent", "phase"],
            registry=registry,
        )
        self.reconcile_seconds = Histogram(
            "agency_reconcile_duration_seconds",
            "Time one reconcile of an object took",
            ["kind"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.reconcile_errors = Counter(
            "agency_reconcile_errors", "Reconciles that raised", ["kind"], registry=registry
        )
        self.queue_depth = Gauge(
            "agency_reconcile_queue_depth",
            "Runs and schedules waiting for a reconcile thread (set by the operator's work queue)",
            registry=registry,
        )
        self.run_start_seconds = Histogram(
            "agency_run_start_stage_seconds",
            "Time each stage of a run's start took (queued, admission, identity, process), observed once "
            "per run by the reconcile that started it",
            ["stage"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.run_seconds = Histogram(
            "agency_run_duration_seconds",
            "Time from a run's creation to its end (its completionTime), by the phase it ended in",
            ["namespace", "agent", "phase"],
            registry=registry,
            buckets=RUN_SECONDS_BUCKETS,
        )
        self.run_outcomes = Counter(
            "agency_run_outcomes",
            "Finished runs by the phase and the reason they ended with (their Ready condition's reason)",
            ["namespace", "agent", "phase", "reason"],
            registry=registry,
        )
        self.judge_scores = Histogram(
            "agency_run_judge_score",
            "The judge's score (0 to 1) of each finished run it scored",
            ["namespace", "agent"],
            registry=registry,
            buckets=JUDGE_SCORE_BUCKETS,
        )
        self.tokens = Counter(
            "agency_model_tokens",
            "Model tokens used by finished runs",
            ["namespace", "agent", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "agency_model_cost_usd",
            "US dollars spent by finished runs",
            ["namespace", "agent"],
            registry=registry,
        )

    @contextmanager
    def reconciling(self, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.reconcile_errors.labels(kind).inc()
            raise
        finally:
            self.reconcile_seconds.labels(kind).observe(time.perf_counter() - started)

    def run_entered(self, namespace: str, agent: str, phase: str) -> None:
        self.run_phases.labels(namespace, agent, phase).inc()

    def run_started(self, laps: StartLaps) -> None:
        """A run's process was started: observe each stage its start took."""
        for stage, seconds in laps.laps:
            self.run_start_seconds.labels(stage).observe(seconds)

    def run_finished(
        self, namespace: str, agent: str, phase: str, reason: str, seconds: float | None, score: float | None
    ) -> None:
        """A run ended: how (phase and reason), how long after its creation (when known), and its judge's
        score (when it was scored)."""
        self.run_outcomes.labels(namespace, agent, phase, reason).inc()
        if seconds is not None:
            self.run_seconds.labels(namespace, agent, phase).observe(seconds)
        if score is not None:
            self.judge_scores.labels(namespace, agent).observe(score)

    def run_used(
        self, namespace: str, agent: str, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        self.tokens.labels(namespace, agent, "input").inc(input_tokens)
        self.tokens.labels(namespace, agent, "output").inc(output_tokens)
        self.cost.labels(namespace, agent).inc(cost_usd)

    def serve(self, port: int) -> None:
        """Expose /metrics on all interfaces; port 0 means no endpoint."""
        if port:
            start_http_server(port, registry=self.registry)
