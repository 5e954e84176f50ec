"""A signal's CloudEvents `traceparent` extension puts the run it starts into the sender's trace."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from agency_operator.triggers.runs import build_run_for_signal
from agency_operator.triggers.signals.parse import parse_signal
from agency_runtime.api.schedule import AgentSchedule

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HEADERS = {"Content-Type": "application/cloudevents+json"}


def _event(**extra: Any) -> bytes:
    event = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", "data": {"x": 1}, **extra}
    return json.dumps(event).encode()


def _schedule() -> AgentSchedule:
    return AgentSchedule.from_k8s(
        {
            "apiVersion": "agency.dev/v1alpha1",
            "kind": "AgentSchedule",
            "metadata": {"name": "s", "namespace": "ns", "uid": "u-1"},
            "spec": {"agentRef": {"name": "a"}, "signals": [{"name": "any", "type": "t"}]},
        }
    )


def test_a_structured_event_with_a_traceparent_starts_a_run_annotated_with_it() -> None:
    signal = parse_signal(HEADERS, _event(traceparent=TRACEPARENT))
    run = build_run_for_signal(_schedule(), "any", signal, datetime.now(UTC))
    assert run["metadata"]["annotations"]["agency.dev/traceparent"] == TRACEPARENT


def test_a_binary_event_carries_its_traceparent_header() -> None:
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "e2",
        "ce-source": "/s",
        "ce-type": "t",
        "ce-traceparent": TRACEPARENT,
    }
    assert parse_signal(headers, b'{"x": 1}').traceparent == TRACEPARENT


def test_a_malformed_or_all_zero_traceparent_is_ignored_and_the_run_starts_its_own_trace() -> None:
    for bad in ("nonsense", "00-" + "0" * 32 + "-b7ad6b7169203331-01"):
        signal = parse_signal(HEADERS, _event(traceparent=bad))
        assert signal.traceparent is None
        run = build_run_for_signal(_schedule(), "any", signal, datetime.now(UTC))
        assert "agency.dev/traceparent" not in run["metadata"]["annotations"]
