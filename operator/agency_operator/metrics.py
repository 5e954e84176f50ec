"""Prometheus metrics of the operator: runs by phase, reconcile latency, tokens and cost by agent.

Counters count what this operator process saw happen (they restart from zero with it, as Prometheus
expects); the reconcile histogram tells a platform owner how long the operator takes per object kind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server


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
