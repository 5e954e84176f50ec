"""Traces and metrics of a run, in the OpenTelemetry GenAI semantic conventions (v1.41).

Spans: `invoke_agent {agent}` for the run (its parent comes from `TRACEPARENT` when set), `chat {model}`
per model call and `execute_tool {tool}` per tool call, both children of the run span. Prompts, replies
and tool arguments/results are recorded only when the policy enables content capture. Metrics:
`gen_ai.client.token.usage` and `gen_ai.client.operation.duration`.

Export: OTLP/HTTP when an endpoint is given (or `OTEL_EXPORTER_OTLP_ENDPOINT` is set), the console when
asked, otherwise nothing (spans are still made, so the run has a trace id). `OTEL_TRACES_EXPORTER` /
`OTEL_METRICS_EXPORTER=none` switch either off. API keys and headers are never recorded.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SCOPE = "agency_runtime"
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


@dataclass(frozen=True)
class TraceSettings:
    """Where spans and metrics go and whether content is recorded."""

    otlp_endpoint: str | None = None
    console: bool = False
    capture_content: bool = False
    service_name: str = "agency-runtime"


def _disabled(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() == "none"


class Telemetry:
    """The run's tracer and GenAI metrics; `shutdown()` flushes everything before the process exits."""

    def __init__(
        self,
        settings: TraceSettings,
        *,
        span_exporter: SpanExporter | None = None,
        metric_reader: MetricReader | None = None,
    ) -> None:
        self.settings = settings
        resource = Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME") or settings.service_name}
        )
        self._tracer_provider = TracerProvider(resource=resource)
        if span_exporter is not None:
            self._tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        if settings.otlp_endpoint and not _disabled("OTEL_TRACES_EXPORTER"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
            self._tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        if settings.console:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            # stderr: stdout carries the result line
            self._tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        readers: list[MetricReader] = [] if metric_reader is None else [metric_reader]
        if settings.otlp_endpoint and not _disabled("OTEL_METRICS_EXPORTER"):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            metric_exporter = OTLPMetricExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/metrics")
            readers.append(PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000))
        self._meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        self.tracer = self._tracer_provider.get_tracer(SCOPE)
        meter: Meter = self._meter_provider.get_meter(SCOPE)
        self.token_usage: Histogram = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.operation_duration: Histogram = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    @property
    def capture_content(self) -> bool:
        return self.settings.capture_content

    # --- spans --------------------------------------------------------------------------------------------

    @contextmanager
    def run_span(self, agent: str, run_id: str, traceparent: str | None) -> Iterator[Span]:
        """The `invoke_agent {agent}` span, current for everything the run does inside it."""
        parent = (
            TraceContextTextMapPropagator().extract({"traceparent": traceparent})
            if traceparent
            else otel_context.Context()
        )
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.conversation.id": run_id,
        }
        with self.tracer.start_as_current_span(
            f"invoke_agent {agent}", context=parent, kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            yield span

    @contextmanager
    def chat_span(self, model: str, provider: str, max_tokens: int | None) -> Iterator[Span]:
        request_model = model.split("/", 1)[1] if "/" in model else model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request_model,
        }
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        with self.tracer.start_as_current_span(
            f"chat {request_model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    @contextmanager
    def tool_span(self, tool: str, call_id: str) -> Iterator[Span]:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        }
        with self.tracer.start_as_current_span(
            f"execute_tool {tool}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            yield span

    # --- recording ----------------------------------------------------------------------------------------

    def record_chat(
        self,
        span: Span,
        *,
        provider: str,
        request_model: str,
        response_model: str,
        response_id: str | None,
        input_tokens: int,
        output_tokens: int,
        finish_reason: str | None,
        duration: float,
        error_type: str | None = None,
    ) -> None:
        """Response attributes on the chat span, and the two GenAI metrics."""
        span.set_attribute("gen_ai.response.model", response_model)
        if response_id:
            span.set_attribute("gen_ai.response.id", response_id)
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": request_model,
            "gen_ai.response.model": response_model,
        }
        if error_type is not None:
            attributes["error.type"] = error_type
        else:
            self.token_usage.record(input_tokens, {**attributes, "gen_ai.token.type": "input"})
            self.token_usage.record(output_tokens, {**attributes, "gen_ai.token.type": "output"})
        self.operation_duration.record(duration, attributes)

    def record_error(self, span: Span, error: BaseException) -> None:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))

    def record_messages(
        self, span: Span, messages: Sequence[Mapping[str, Any]], output: Mapping[str, Any]
    ) -> None:
        """Prompt and reply on the chat span, only when the policy enables content capture."""
        if not self.capture_content:
            return
        span.set_attribute("gen_ai.input.messages", json.dumps(list(messages), default=str))
        span.set_attribute("gen_ai.output.messages", json.dumps([output], default=str))

    def record_tool_content(self, span: Span, arguments: str, result: str) -> None:
        if not self.capture_content:
            return
        span.set_attribute("gen_ai.tool.call.arguments", arguments)
        span.set_attribute("gen_ai.tool.call.result", result)

    def shutdown(self) -> None:
        """Flush and stop exporters (bounded: an unreachable collector does not hold the exit long)."""
        self._tracer_provider.force_flush(timeout_millis=10_000)
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown(timeout_millis=10_000)


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def traceparent_of(span: Span) -> str:
    """The W3C traceparent naming `span`, so another process can continue the trace under it."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The traceparent of the current span, None outside a recorded span (no all-zero ids handed on)."""
    span = trace.get_current_span()
    return traceparent_of(span) if span.get_span_context().is_valid else None
