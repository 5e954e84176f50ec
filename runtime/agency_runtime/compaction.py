"""Compaction: when the conversation nears the model's context window, older steps become one summary.

Before each model step the loop asks `Compactor.before_step`. When the request would be at least the
threshold (`AGENCY_COMPACTION_TOKENS`, else the policy's `spec.budgets.perRun.compactAtTokens`, else
`AGENCY_COMPACTION_FRACTION` (default 0.75) of the model's context window as litellm knows it; a model
litellm does not know is never compacted unless a token threshold is set), the messages between the task
and the last `keep_steps` steps are summarized by the agent's own model and replaced by that summary.
The cut is always at an assistant message, so an assistant tool call is never separated from its tool results.

Only the messages sent change: the journal keeps every step. The summary call is journaled under
`step-N/compaction` together with where it cut, so a new process replays the same compaction at the same
step without asking the model again. When the summary call fails (every model failed), the step goes on
uncompacted and the journal records why; when the budget cannot pay for it, the run stops like any call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.budget import Prices
from agency_runtime.journal import Kind
from agency_runtime.llm import Message, ModelClient, ModelError, count_prompt_tokens, load_litellm
from agency_runtime.sidecall import SideCalls, step_span

TOKENS_VARIABLE = "AGENCY_COMPACTION_TOKENS"
FRACTION_VARIABLE = "AGENCY_COMPACTION_FRACTION"
KEEP_VARIABLE = "AGENCY_COMPACTION_KEEP_STEPS"
SUMMARY_PREFIX = "Summary of the earlier steps of this run (compacted to save context):\n"
MAX_RENDERED_CHARS_PER_MESSAGE = 4_000

SUMMARY_INSTRUCTIONS = (
    "You compact the history of an AI agent's run so it can continue with less context. Summarize the "
    "steps below: what was done (tool calls and their important results), what was learned, decisions "
    "taken, and what is still open. Keep names, ids, numbers and URLs that later steps may need. Write "
    "plain prose or short bullets, at most {words} words. Do not call tools."
)


@dataclass(frozen=True)
class CompactionSettings:
    """When to compact: at `threshold_tokens`, else at `fraction` of the model's context window."""

    threshold_tokens: int | None = None
    fraction: float = 0.75
    keep_steps: int = 2
    """The most recent steps (assistant turn plus its tool results) always sent in full."""
    max_summary_tokens: int = 1_024

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CompactionSettings:
        """From AGENCY_COMPACTION_* variables; unset or invalid ones keep the defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def number(name: str, default: float) -> float:
            try:
                value = float(env.get(name, ""))
            except ValueError:
                return default
            return value if value > 0 else default

        tokens = env.get(TOKENS_VARIABLE, "")
        return cls(
            threshold_tokens=int(tokens) if tokens.isdigit() and int(tokens) > 0 else None,
            fraction=min(1.0, number(FRACTION_VARIABLE, defaults.fraction)),
            keep_steps=int(number(KEEP_VARIABLE, defaults.keep_steps)),
        )

    def with_policy(self, policy: AgentPolicySpec | None) -> CompactionSettings:
        """These settings with the policy's `compactAtTokens` as the threshold, unless one is already set
        (`AGENCY_COMPACTION_TOKENS` stays an override)."""
        if self.threshold_tokens is not None or policy is None:
            return self
        threshold = policy.budgets.per_run.compact_at_tokens
        return self if threshold is None else replace(self, threshold_tokens=threshold)

    def threshold_for(self, model: str) -> int | None:
        if self.threshold_tokens is not None:
            return self.threshold_tokens
        window = context_window(model)
        return None if window is None else int(window * self.fraction)


def context_window(model: str) -> int | None:
    """The model's input token limit from litellm's model list, None when litellm does not know it."""
    try:
        info = load_litellm().get_model_info(model)
    except Exception:
        return None
    for name in ("max_input_tokens", "max_tokens"):
        value = info.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def cut_point(messages: Sequence[Message], keep_steps: int) -> int | None:
    """Index of the first message kept in full (an assistant turn), or None when nothing can be compacted.

    Message 0 is the task; everything from 1 up to the cut is summarized."""
    starts = [i for i, m in enumerate(messages) if i > 0 and m.get("role") == "assistant"]
    keep = max(1, keep_steps)
    if len(starts) <= keep:
        return None
    cut = starts[-keep]
    return cut if cut > 1 else None


def render(messages: Sequence[Message]) -> str:
    """The compacted messages as plain text for the summarizer (tool calls and results in words)."""
    lines: list[str] = []
    for message in messages:
        role = str(message.get("role"))
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = json.dumps(content)
        if len(content) > MAX_RENDERED_CHARS_PER_MESSAGE:
            content = content[:MAX_RENDERED_CHARS_PER_MESSAGE] + " [...]"
        if role == "tool":
            lines.append(f"[tool result {message.get('tool_call_id')}] {content}")
            continue
        if content:
            lines.append(f"[{role}] {content}")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            lines.append(
                f"[{role} calls tool {function.get('name')} ({call.get('id')})] {function.get('arguments')}"
            )
    return "\n".join(lines)


def summary_request(task: str, compacted: Sequence[Message], max_words: int) -> list[Message]:
    return [
        {"role": "system", "content": SUMMARY_INSTRUCTIONS.format(words=max_words)},
        {
            "role": "user",
            "content": f"The agent's task:\n{task}\n\nThe steps to summarize:\n{render(compacted)}",
        },
    ]


def compacted(messages: Sequence[Message], cut: int, summary: str) -> list[Message]:
    """The conversation after compaction: the task, the summary, then the kept steps unchanged."""
    return [messages[0], {"role": "user", "content": SUMMARY_PREFIX + summary}, *messages[cut:]]


@dataclass
class Compactor:
    """Decides, before each model step, whether to compact, and replays earlier decisions."""

    settings: CompactionSettings
    calls: SideCalls
    client: ModelClient
    prices: Prices

    def before_step(
        self, step: int, system: Message, messages: list[Message], tools: Sequence[Mapping[str, object]]
    ) -> list[Message]:
        """The messages to send for step `step` (the same list when nothing is compacted)."""
        key = f"step-{step}/compaction"
        done = self.calls.replay.result(key)
        if done is not None:
            answer = self.calls.answered(f"{key}/model")
            if answer is not None:
                self.calls.charge(answer)
            return compacted(messages, int(done["cut"]), str(done["summary"]))
        if self.calls.replay.result(f"step-{step}/model") is not None:
            return messages  # answered without compaction by an earlier process: send nothing, change nothing
        model = self.client.spec.name
        threshold = self.settings.threshold_for(model)
        if threshold is None:
            return messages
        tokens = count_prompt_tokens(model, [system, *messages], [dict(t) for t in tools])
        if tokens < threshold:
            return messages
        cut = cut_point(messages, self.settings.keep_steps)
        if cut is None:
            return messages
        words = max(50, self.settings.max_summary_tokens * 3 // 4)
        request = summary_request(str(messages[0].get("content") or ""), messages[1:cut], words)
        with step_span(
            self.calls.telemetry,
            "compaction",
            **{"agency.compaction.messages": cut - 1, "agency.compaction.prompt_tokens": tokens},
        ):
            try:
                answer = self.calls.ask(
                    f"{key}/model",
                    self.client,
                    request,
                    max_output_tokens=self.settings.max_summary_tokens,
                    prices=self.prices,
                )
            except ModelError as err:
                self.calls.journal.append(Kind.EVENT, f"{key}/skipped", {"error": str(err)[:500]})
                return messages
        summary = (answer.content or "").strip() or "(the summarizer returned nothing)"
        self.calls.journal.append(
            Kind.RESULT,
            key,
            {"cut": cut, "summary": summary, "promptTokens": tokens, "threshold": threshold},
        )
        return compacted(messages, cut, summary)
