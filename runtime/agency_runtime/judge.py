"""LLM-as-a-judge: an optional judge model scores a finished run against a rubric.

The judge gets the task, how the run ended and what happened, and must answer JSON
`{"score": <0..1>, "reason": "..."}`. The score lands in the run's result (`judge`), so in the AgentRun's
status once the operator copies it, and on the `invoke_agent` span as `agency.judge.score`. An answer that
is not such JSON (or a judge that fails, or a budget that cannot pay for it) never fails the run: the
result says it is unscored and why.

Settings come from `RunContext.judge`, else from the Agent spec's optional `judge` field
(`{model: {name, apiBase, credentialsSecretRef}, rubric}`); the judge's own key, when it has one, comes as
`AGENCY_JUDGE_API_KEY`.
Judging is journaled (`judge/model`, `judge`) like every model call, and counted against the budget.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agency_runtime.api.agent import AgentSpec, ModelSpec
from agency_runtime.budget import BudgetExceeded
from agency_runtime.compaction import render
from agency_runtime.journal import Kind
from agency_runtime.llm import Message, ModelClient, ModelError, prices_for
from agency_runtime.reflection import Outcome
from agency_runtime.sidecall import SideCalls, step_span

KEY = "judge"
SCORE_ATTRIBUTE = "agency.judge.score"
MAX_TRANSCRIPT_CHARS = 12_000
MAX_REASON_CHARS = 1_000

INSTRUCTIONS = (
    "You are a strict, fair judge of an AI agent's work. Score how well the run below meets the rubric, "
    'from 0 (not at all) to 1 (fully). Answer with JSON only: {"score": <number 0..1>, "reason": "<one or '
    'two sentences>"}'
)
DEFAULT_RUBRIC = "The agent completed the task correctly, safely and without unnecessary steps."


@dataclass(frozen=True)
class JudgeSettings:
    """Which model judges and by what rubric."""

    model: str
    api_base: str | None = None
    rubric: str = DEFAULT_RUBRIC
    max_output_tokens: int = 300
    api_key: str | None = field(default=None, repr=False)
    """The judge's own API key; None: the agent's model key is used."""

    def spec(self) -> ModelSpec:
        raw: dict[str, Any] = {"name": self.model}
        if self.api_base:
            raw["apiBase"] = self.api_base
        return ModelSpec.model_validate(raw)


def settings_of(agent: AgentSpec, api_key: str | None = None) -> JudgeSettings | None:
    """The judge of an Agent spec (`spec.judge`), None when it has none. `api_key` is the judge's own key
    (`AGENCY_JUDGE_API_KEY`, from `spec.judge.model.credentialsSecretRef`); None means the agent's."""
    if agent.judge is None:
        return None
    model = agent.judge.model
    return JudgeSettings(
        model=model.name,
        api_base=model.api_base,
        rubric=agent.judge.rubric or DEFAULT_RUBRIC,
        api_key=api_key,
    )


@dataclass(frozen=True)
class Verdict:
    """A score in [0, 1] with its reason, or unscored (`score` None) with why."""

    score: float | None
    reason: str
    model: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scored": self.score is not None, "reason": self.reason, "model": self.model}
        if self.score is not None:
            out["score"] = self.score
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Verdict:
        score = raw.get("score")
        return cls(
            float(score) if isinstance(score, int | float) else None,
            str(raw.get("reason", "")),
            str(raw.get("model", "")),
        )


def parse(text: str | None, model: str) -> Verdict:
    """The judge's answer as a verdict; anything but a JSON object with a score in [0, 1] is unscored."""
    body = (text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1).strip()
    start, end = body.find("{"), body.rfind("}")
    try:
        value = json.loads(body[start : end + 1]) if start != -1 and end > start else None
    except json.JSONDecodeError:
        value = None
    shown = (text or "")[:200]
    if not isinstance(value, dict):
        return Verdict(None, f"unscored: the judge did not answer a JSON object: {shown!r}", model)
    score = value.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        return Verdict(None, f"unscored: the judge's score is not a number from 0 to 1: {score!r}", model)
    reason = str(value.get("reason") or "")[:MAX_REASON_CHARS]
    return Verdict(float(score), reason, model)


def request(rubric: str, task: str, outcome: Outcome, messages: Sequence[Message]) -> list[Message]:
    transcript = render(messages[1:])
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        transcript = "[...]\n" + transcript[-MAX_TRANSCRIPT_CHARS:]
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {
            "role": "user",
            "content": f"Rubric:\n{rubric}\n\nThe task:\n{task}\n\n{outcome.describe()}\n\n"
            f"What happened:\n{transcript or '(nothing)'}",
        },
    ]


def score(
    calls: SideCalls,
    settings: JudgeSettings,
    api_key: str | None,
    task: str,
    outcome: Outcome,
    messages: Sequence[Message],
) -> Verdict:
    """The judge's verdict (read back from the journal when an earlier process got it)."""
    done = calls.replay.result(KEY)
    if done is not None:
        return Verdict.from_json(done)
    spec = settings.spec()
    with step_span(calls.telemetry, "judge", **{"gen_ai.request.model": settings.model}) as span:
        try:
            answer = calls.ask(
                f"{KEY}/model",
                ModelClient(spec, api_key),
                request(settings.rubric, task, outcome, messages),
                max_output_tokens=settings.max_output_tokens,
                prices=prices_for(spec),
            )
        except BudgetExceeded as exceeded:
            verdict = Verdict(
                None, f"unscored: the budget does not allow judging ({exceeded.message})", spec.name
            )
        except ModelError as err:
            verdict = Verdict(None, f"unscored: the judge model failed ({err})", spec.name)
        else:
            verdict = parse(answer.content, spec.name)
        if verdict.score is not None:
            span.set_attribute(SCORE_ATTRIBUTE, verdict.score)
    calls.journal.append(Kind.RESULT, KEY, verdict.to_json())
    return verdict
