"""Spans exported with the real OpenTelemetry SDK over OTLP/HTTP come back from a real Jaeger intact.

This is the ground the trace assertions of later tests stand on: if the testbed Jaeger lost parents,
attributes or services, every span-tree assertion built on it would be meaningless.
"""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agency_testbed.jaeger import Jaeger, TraceView


def _unique_service() -> str:
    return f"agency-test-{uuid.uuid4().hex[:12]}"


def _export_agent_run(jaeger: Jaeger, service: str) -> str:
    """Export an ``agent.run`` span with an ``llm.call`` child; the trace id as 32 hex digits."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "agency.agent": "summarizer"})
    )
    exporter = OTLPSpanExporter(endpoint=f"{jaeger.otlp_http_endpoint}/v1/traces", timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("agency.tests")
    try:
        with tracer.start_as_current_span("agent.run") as run:
            run.set_attribute("agency.run", "run-1")
            with tracer.start_as_current_span("llm.call") as call:
                call.set_attribute("gen_ai.request.model", "scripted")
                call.set_attribute("gen_ai.usage.input_tokens", 42)
        assert provider.force_flush(timeout_millis=10_000), "the OTLP exporter did not flush in 10s"
    finally:
        provider.shutdown()
    return format(run.get_span_context().trace_id, "032x")


def test_spans_exported_over_otlp_http_come_back_as_a_parent_child_tree(jaeger: Jaeger) -> None:
    service = _unique_service()
    trace_id = _export_agent_run(jaeger, service)

    trace = TraceView.from_json(jaeger.wait_for_trace(trace_id, min_spans=2))

    assert trace.trace_id == trace_id
    assert trace.outline() == "agent.run\n  llm.call"
    run, call = trace.named("agent.run"), trace.named("llm.call")
    assert run.parent_span_id is None
    assert call.parent_span_id == run.span_id
    assert {run.service, call.service} == {service}
    assert call.attributes["gen_ai.usage.input_tokens"] == 42
    assert call.attributes["gen_ai.request.model"] == "scripted"
    assert run.attributes["agency.run"] == "run-1"
    assert call.resource["agency.agent"] == "summarizer"


def test_an_exporting_service_is_listed_and_its_traces_are_found_by_service(jaeger: Jaeger) -> None:
    service = _unique_service()
    trace_id = _export_agent_run(jaeger, service)
    jaeger.wait_for_trace(trace_id, min_spans=2)

    assert service in jaeger.services()
    found = [TraceView.from_json(t).trace_id for t in jaeger.traces(service)]
    assert found == [trace_id]


def test_waiting_for_a_trace_that_never_arrives_fails_naming_the_trace(jaeger: Jaeger) -> None:
    missing = uuid.uuid4().hex

    with pytest.raises(TimeoutError, match=missing):
        jaeger.wait_for_trace(missing, timeout=1.0)
