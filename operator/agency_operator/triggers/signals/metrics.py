"""Prometheus counters of the signal endpoint: every request's outcome, and what the accepted ones did.

`agency_signals_total{outcome}` counts requests: accepted, malformed, unauthenticated, forbidden,
oversized, unsupported_media_type, unavailable (the API server could not answer), error (unexpected; logged).
`agency_signal_triggers_total{outcome}` counts per-trigger results of accepted events: Created, Exists,
Skipped, Suspended, Insignificant, BelowThreshold, Error.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter

REQUEST_OUTCOMES = (
    "accepted",
    "malformed",
    "unauthenticated",
    "forbidden",
    "oversized",
    "unsupported_media_type",
    "unavailable",
    "error",
)


class SignalMetrics:
    """The endpoint's counters, registered on one registry (the process-wide one unless a test passes
    its own: a counter name can be registered once per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "agency_signals",
            "CloudEvents received by the signal endpoint, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.triggers = Counter(
            "agency_signal_triggers",
            "What accepted signals did at the schedules' triggers, by outcome",
            ["outcome"],
            registry=registry,
        )
        for outcome in REQUEST_OUTCOMES:
            self.requests.labels(outcome=outcome)  # present at zero, so rates work from the start


_default: SignalMetrics | None = None


def default_metrics() -> SignalMetrics:
    """The counters on prometheus_client's global registry, created on first use."""
    global _default
    if _default is None:
        _default = SignalMetrics(REGISTRY)
    return _default
