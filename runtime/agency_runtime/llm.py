"""Model calls through litellm: retries inside the run's time, fallbacks, and a small typed answer.

litellm is imported lazily (it takes seconds) by `load_litellm()`; `__main__` starts that import in a
background thread at process start so it overlaps reading the run file and opening the journal, and
switches Python's cyclic garbage collector off until the first model call is over (`pause_gc`): the
imports make hundreds of thousands of long-lived objects that the collector would otherwise scan again
and again, a fifth of the time to the first request.
Rate limits (429) and server errors (5xx, timeouts, connection failures) are retried with exponential
backoff and jitter, honouring Retry-After, but never past the run's deadline; then the fallbacks are
tried in order. litellm's and the OpenAI SDK's own retries are switched off so that only this loop
decides, and so that every attempt is visible here.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from agency_runtime.api.agent import ModelSpec
from agency_runtime.budget import BudgetExceeded, Prices

JsonDict = dict[str, Any]
Message = JsonDict

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
BASE_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
MAX_ATTEMPTS_PER_MODEL = 6

_litellm: ModuleType | None = None
_litellm_lock = threading.Lock()


def load_litellm() -> ModuleType:
    """Import litellm once, with the local price list (no download at import).

    OpenAI-compatible models go through litellm's own HTTP handler rather than the OpenAI SDK's client,
    whose first use imports every module of `openai.resources` (half a second of a run's start-up);
    `EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER=false` in the run's environment switches back."""
    global _litellm
    with _litellm_lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER", "true")
            module = importlib.import_module("litellm")
            setattr(module, "telemetry", False)  # noqa: B010 - no usage reporting from a run
            setattr(module, "suppress_debug_info", True)  # noqa: B010
            _litellm = module
        return _litellm


def prewarm_litellm() -> threading.Thread:
    """Start importing litellm in a daemon thread; the first call then waits only for what is left."""
    thread = threading.Thread(target=_quiet_load, name="litellm-import", daemon=True)
    thread.start()
    return thread


def _quiet_load() -> None:
    with contextlib.suppress(Exception):  # the real call imports again and reports the error
        load_litellm()


GC_PAUSE_SECONDS = 30.0
_gc_paused = False
_gc_lock = threading.Lock()


def pause_gc(longest: float = GC_PAUSE_SECONDS) -> None:
    """Switch the cyclic garbage collector off for start-up; `resume_gc()` switches it back on after the
    first model call, and at the latest after `longest` seconds (a resumed run may replay its model calls
    and go straight to tools). Reference counting still frees everything that is not in a cycle."""
    global _gc_paused
    with _gc_lock:
        if not gc.isenabled():
            return
        gc.disable()
        _gc_paused = True
    timer = threading.Timer(longest, resume_gc)
    timer.daemon = True
    timer.start()


def resume_gc() -> None:
    """End `pause_gc()`: what start-up made (modules, classes, the run's settings) lives as long as the
    process, so it is frozen out of later collections, and the collector is back on. Idempotent."""
    global _gc_paused
    with _gc_lock:
        if _gc_paused:
            _gc_paused = False
            gc.freeze()
            gc.enable()


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for; `arguments` is the raw JSON text the model produced."""

    id: str
    name: str
    arguments: str

    def to_json(self) -> JsonDict:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ToolCall:
        return cls(id=str(raw["id"]), name=str(raw["name"]), arguments=str(raw["arguments"]))


@dataclass(frozen=True)
class Answer:
    """A model's reply and what it cost; journaled as is, so a replay never needs the model again."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    response_id: str | None
    model: str
    provider: str
    finish_reason: str | None = None
    attempts: int = 1

    def assistant_message(self) -> Message:
        """The assistant turn to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message

    def to_json(self) -> JsonDict:
        return {
            "content": self.content,
            "toolCalls": [c.to_json() for c in self.tool_calls],
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "costUSD": self.cost_usd,
            "responseId": self.response_id,
            "model": self.model,
            "provider": self.provider,
            "finishReason": self.finish_reason,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Answer:
        return cls(
            content=raw.get("content"),
            tool_calls=tuple(ToolCall.from_json(c) for c in raw.get("toolCalls") or ()),
            input_tokens=int(raw.get("inputTokens", 0)),
            output_tokens=int(raw.get("outputTokens", 0)),
            cost_usd=float(raw.get("costUSD", 0.0)),
            response_id=raw.get("responseId"),
            model=str(raw.get("model", "")),
            provider=str(raw.get("provider", "")),
            finish_reason=raw.get("finishReason"),
            attempts=int(raw.get("attempts", 1)),
        )


class ModelError(Exception):
    """Every model (primary and fallbacks) failed; the message says what each last answered."""


@dataclass(frozen=True)
class Target:
    """One model to try: litellm id, endpoint and key."""

    name: str
    api_base: str | None
    api_key: str | None


def provider_of(model: str) -> str:
    """The gen_ai.provider.name of a litellm model id (`openai/gpt-4o` -> `openai`)."""
    return model.split("/", 1)[0] if "/" in model else "openai"


def prices_for(spec: ModelSpec, model: str | None = None) -> Prices:
    """US dollars per token: the Agent's own pricing wins, then litellm's price list, else zero."""
    pricing = spec.pricing
    if pricing is not None:
        return Prices(
            pricing.input_per_million_tokens_usd / 1e6,
            pricing.output_per_million_tokens_usd / 1e6,
        )
    try:
        litellm = load_litellm()
        info = litellm.get_model_info(model or spec.name)
    except Exception:
        return Prices()
    return Prices(
        float(info.get("input_cost_per_token") or 0.0), float(info.get("output_cost_per_token") or 0.0)
    )


def count_prompt_tokens(model: str, messages: Sequence[Message], tools: Sequence[JsonDict]) -> int:
    """Prompt tokens of a request: litellm's counter, or characters / 4 when it cannot count."""
    try:
        litellm = load_litellm()
        return int(litellm.token_counter(model=model, messages=list(messages), tools=list(tools) or None))
    except Exception:
        text = json.dumps(list(messages)) + json.dumps(list(tools))
        return len(text) // 4 + 1


def _status_of(err: BaseException) -> int | None:
    status = getattr(err, "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after(err: BaseException) -> float | None:
    """Seconds from Retry-After / retry-after-ms on the error's HTTP response, if the provider sent them."""
    for source in (
        getattr(err, "litellm_response_headers", None),
        getattr(getattr(err, "response", None), "headers", None),
    ):
        if not source:
            continue
        try:
            millis = source.get("retry-after-ms")
            if millis is not None:
                return max(0.0, float(millis) / 1000)
            seconds = source.get("retry-after")
            if seconds is not None:
                return max(0.0, float(seconds))
        except (TypeError, ValueError):
            continue
    return None


def _retryable(err: BaseException) -> bool:
    status = _status_of(err)
    if status is not None:
        return status in RETRYABLE_STATUS
    name = type(err).__name__
    return name in {"APIConnectionError", "Timeout", "APITimeoutError", "ServiceUnavailableError"}


def backoff_delay(attempt: int, retry_after: float | None, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry `attempt` (1-based): Retry-After if given, else exponential with full jitter
    over the upper half (so waits grow but never collapse to zero)."""
    if retry_after is not None:
        return min(retry_after, MAX_BACKOFF_SECONDS * 4)
    ceiling = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


@dataclass
class ModelClient:
    """Calls the agent's model (then its fallbacks) for one run.

    `deadline` (epoch seconds, or None) bounds every attempt and every wait between attempts; a retry
    that could not finish before it ends the run `BudgetExceeded` on the wall-time limit.
    """

    spec: ModelSpec
    api_key: str | None
    fallback_api_keys: Sequence[str | None] = ()
    """Key of each fallback, in order; a fallback beyond the list uses `api_key`."""
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    on_retry: Callable[[str, int, BaseException, float], None] | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def targets(self) -> list[Target]:
        first = Target(self.spec.name, self.spec.api_base, self.api_key)
        keys = list(self.fallback_api_keys)
        rest = [
            Target(f.name, f.api_base, keys[i] if i < len(keys) else self.api_key)
            for i, f in enumerate(self.spec.fallbacks)
        ]
        return [first, *rest]

    def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[JsonDict],
        *,
        max_output_tokens: int | None,
        deadline: float | None,
    ) -> Answer:
        failures: list[str] = []
        try:
            for target in self.targets():
                try:
                    return self._complete_with(target, messages, tools, max_output_tokens, deadline)
                except BudgetExceeded:
                    raise
                except Exception as err:
                    failures.append(f"{target.name}: {_describe(err)}")
        finally:
            resume_gc()  # litellm's first call imports the provider's client: done by now
        raise ModelError("every model failed: " + "; ".join(failures))

    def _complete_with(
        self,
        target: Target,
        messages: Sequence[Message],
        tools: Sequence[JsonDict],
        max_output_tokens: int | None,
        deadline: float | None,
    ) -> Answer:
        litellm = load_litellm()
        params = self.spec.parameters
        attempt = 0
        while True:
            attempt += 1
            timeout = float(params.timeout_seconds)
            if deadline is not None:
                left = deadline - self.clock()
                if left <= 0:
                    raise BudgetExceeded("wall", "wall-time limit reached while calling the model")
                timeout = min(timeout, left)
            kwargs: JsonDict = {
                "model": target.name,
                "messages": list(messages),
                "timeout": timeout,
                "num_retries": 0,
                "max_retries": 0,
            }
            if tools:
                kwargs["tools"] = list(tools)
            if target.api_base:
                kwargs["api_base"] = target.api_base
            if target.api_key:
                kwargs["api_key"] = target.api_key
            if max_output_tokens is not None:
                kwargs["max_tokens"] = max_output_tokens
            for name in ("temperature", "top_p", "seed", "reasoning_effort"):
                value = getattr(params, name)
                if value is not None:
                    kwargs[name] = value
            if self.extra_headers:
                kwargs["extra_headers"] = dict(self.extra_headers)
            try:
                response = litellm.completion(**kwargs)
            except Exception as err:
                if not _retryable(err) or attempt >= MAX_ATTEMPTS_PER_MODEL:
                    raise
                wait = backoff_delay(attempt, _retry_after(err))
                if deadline is not None and self.clock() + wait >= deadline:
                    raise BudgetExceeded(
                        "wall",
                        f"wall-time limit would be reached waiting {wait:.1f}s to retry the model after "
                        f"{_describe(err)}",
                    ) from None
                if self.on_retry is not None:
                    self.on_retry(target.name, attempt, err, wait)
                self.sleep(wait)
                continue
            return self._answer(litellm, target, response, attempt)

    def _answer(self, litellm: ModuleType, target: Target, response: Any, attempts: int) -> Answer:
        choice = response.choices[0]
        message = choice.message
        calls = []
        for index, raw in enumerate(getattr(message, "tool_calls", None) or ()):
            function = raw.function
            arguments = function.arguments
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            calls.append(
                ToolCall(id=raw.id or f"call_{index}", name=str(function.name or ""), arguments=arguments)
            )
        usage = getattr(response, "usage", None)
        input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return Answer(
            content=message.content,
            tool_calls=tuple(calls),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self._cost(litellm, target, response, input_tokens, output_tokens),
            response_id=getattr(response, "id", None),
            model=str(getattr(response, "model", None) or target.name),
            provider=provider_of(target.name),
            finish_reason=getattr(choice, "finish_reason", None),
            attempts=attempts,
        )

    def _cost(
        self, litellm: ModuleType, target: Target, response: Any, input_tokens: int, output_tokens: int
    ) -> float:
        if self.spec.pricing is not None and target.name == self.spec.name:
            return prices_for(self.spec).cost(input_tokens, output_tokens)
        try:
            cost: float = float(
                litellm.completion_cost(completion_response=response, model=target.name) or 0.0
            )
            return cost
        except Exception:
            return 0.0


def _describe(err: BaseException) -> str:
    """A short description of a failure for messages: type, status and the first line of the text."""
    status = _status_of(err)
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    head = type(err).__name__ + (f" {status}" if status else "")
    return f"{head}: {text[:300]}" if text else head
