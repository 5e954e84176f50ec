"""Model calls the runtime makes for itself, not as a step of the task: compaction, reflection, judging.

They are journaled like the loop's own calls (an intent, then the full answer under their key), so a new
process reads the answer back instead of asking again; they are counted against the run's token and cost
budget (but are not steps: the step limit bounds the task, not the runtime's own bookkeeping); and each is
traced as a span named for its kind (`agency.step.kind`) with the usual `chat {model}` span inside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from opentelemetry.trace import Span

from agency_runtime.budget import Meter, Prices
from agency_runtime.journal import Journal, Kind, Replay
from agency_runtime.llm import Answer, Message, ModelClient, ModelError, count_prompt_tokens, provider_of
from agency_runtime.tracing import Telemetry

STEP_KIND = "agency.step.kind"


@dataclass(frozen=True)
class SideCalls:
    """What a side call needs from the run: where to journal, what to replay, what to charge and trace."""

    journal: Journal
    replay: Replay
    meter: Meter
    telemetry: Telemetry
    clock: Callable[[], float] = time.time

    def answered(self, key: str) -> Answer | None:
        """The answer an earlier process (or this one) already journaled under `key`."""
        done = self.replay.result(key)
        return Answer.from_json(done) if done is not None else None

    def charge(self, answer: Answer) -> None:
        """Count a side call's tokens and cost (not a step)."""
        self.meter.usage = self.meter.usage.plus(answer.input_tokens, answer.output_tokens, answer.cost_usd)

    def ask(
        self,
        key: str,
        client: ModelClient,
        messages: Sequence[Message],
        *,
        max_output_tokens: int,
        prices: Prices,
    ) -> Answer:
        """The journaled answer under `key`, or a new call (BudgetExceeded when it cannot be afforded,
        ModelError when every model failed); either way the answer is charged to the budget once."""
        answer = self.answered(key)
        if answer is None:
            answer = self._call(key, client, messages, max_output_tokens, prices)
        self.charge(answer)
        return answer

    def _call(
        self,
        key: str,
        client: ModelClient,
        messages: Sequence[Message],
        max_output_tokens: int,
        prices: Prices,
    ) -> Answer:
        model = client.spec.name
        estimate = count_prompt_tokens(model, messages, [])
        # The step limit bounds the task's steps; a side call is allowed whenever tokens, cost and time are.
        unstepped = Meter(
            replace(self.meter.budget, max_steps=None),
            self.meter.started_at,
            usage=self.meter.usage,
            steps=self.meter.steps,
            clock=self.clock,
        )
        allowance = unstepped.allow_call(estimate, max_output_tokens, prices)
        self.journal.append(
            Kind.INTENT,
            key,
            {"estimatedInputTokens": estimate, "maxOutputTokens": allowance.max_output_tokens},
        )
        provider = provider_of(model)
        request_model = model.split("/", 1)[1] if "/" in model else model
        started = time.monotonic()
        with self.telemetry.chat_span(model, provider, allowance.max_output_tokens) as span:
            try:
                answer = client.complete(
                    messages,
                    [],
                    max_output_tokens=allowance.max_output_tokens,
                    deadline=self.meter.deadline(),
                )
            except Exception as err:
                self.telemetry.record_error(span, err)
                self.telemetry.record_chat(
                    span,
                    provider=provider,
                    request_model=request_model,
                    response_model=request_model,
                    response_id=None,
                    input_tokens=0,
                    output_tokens=0,
                    finish_reason=None,
                    duration=time.monotonic() - started,
                    error_type=type(err).__qualname__,
                )
                raise
            self.telemetry.record_chat(
                span,
                provider=answer.provider,
                request_model=request_model,
                response_model=answer.model,
                response_id=answer.response_id,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                finish_reason=answer.finish_reason,
                duration=time.monotonic() - started,
            )
            self.telemetry.record_messages(span, messages, answer.assistant_message())
        self.journal.append(Kind.RESULT, key, answer.to_json())
        return answer


@contextmanager
def step_span(telemetry: Telemetry, kind: str, **attributes: str | int | float | bool) -> Iterator[Span]:
    """The span of a runtime step (`compaction`, `reflection`, `judge`, `rollback`), current inside."""
    with telemetry.tracer.start_as_current_span(kind, attributes={STEP_KIND: kind, **attributes}) as span:
        yield span


__all__ = ["STEP_KIND", "ModelError", "SideCalls", "step_span"]
