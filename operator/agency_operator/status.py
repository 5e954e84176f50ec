"""Status drafts: compute an object's next status from the current one, and patch only what changed.

A draft starts from the status as read, takes the reconciler's findings (conditions, phase, usage) and
yields a merge patch of the fields that differ, or nothing. Patching nothing when nothing changed is
what keeps a second reconcile from bumping the object's resourceVersion (and waking every watcher).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agency_operator.kube import JsonDict
from agency_runtime.api.common import RunPhase, Usage
from agency_runtime.api.conditions import READY, get_condition, set_condition, to_k8s
from agency_runtime.api.meta import plain
from agency_runtime.api.run import MAX_JUDGE_REASON, MAX_LESSON, MAX_RESULT, JudgeVerdict


def timestamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


class StatusDraft:
    """The next status of one object; `patch()` is the merge patch that brings the object there."""

    def __init__(self, current: Mapping[str, Any] | None, generation: int | None) -> None:
        self.original: JsonDict = plain(current or {})
        self.status: JsonDict = copy.deepcopy(self.original)
        self.generation = generation
        self.transitions: list[tuple[str, str, str, str]] = []

    def condition(self, type_: str, status: bool, reason: str, message: str = "") -> bool:
        """Set a condition; True (and recorded in `transitions`) when its status or reason changed."""
        conditions = self.status.get("conditions", [])
        previous = get_condition(conditions, type_)
        updated = set_condition(
            conditions, type_, status, reason, message, observed_generation=self.generation
        )
        self.status["conditions"] = to_k8s(updated)
        new = get_condition(updated, type_)
        changed = previous is None or previous.status != new.status or previous.reason != reason  # type: ignore[union-attr]
        if changed:
            self.transitions.append((type_, "True" if status else "False", reason, message))
        return changed

    def condition_reason(self, type_: str) -> str | None:
        found = get_condition(self.status.get("conditions", []), type_)
        return found.reason if found is not None else None

    def set(self, **fields: Any) -> None:
        for key, value in fields.items():
            if value is None:
                self.status.pop(key, None)
            else:
                self.status[key] = value

    def get(self, key: str) -> Any:
        return self.status.get(key)

    def patch(self) -> JsonDict | None:
        """The merge patch of status fields that changed (None for removed ones), or None if none did."""
        if self.generation is not None:
            self.status["observedGeneration"] = self.generation
        changes: JsonDict = {}
        for key in set(self.original) | set(self.status):
            if self.original.get(key) != self.status.get(key):
                changes[key] = self.status.get(key)
        return changes or None


def ready(draft: StatusDraft, ok: bool, reason: str, message: str = "") -> None:
    draft.condition(READY, ok, reason, message)


def usage_of(result: Mapping[str, Any]) -> Usage:
    raw = result.get("usage") or {}
    input_tokens = int(raw.get("inputTokens", 0) or 0)
    output_tokens = int(raw.get("outputTokens", 0) or 0)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        cost_usd=float(raw.get("costUSD", 0.0) or 0.0),
    )


def phase_of(result: Mapping[str, Any] | None) -> RunPhase:
    """The final phase the runtime reported; a result that is not final, or none, means Failed."""
    try:
        phase = RunPhase(str((result or {}).get("phase")))
    except ValueError:
        return RunPhase.FAILED
    return phase if phase.finished else RunPhase.FAILED


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def judge_fields(verdict: Mapping[str, Any]) -> JsonDict:
    """The runtime's judge verdict as `status.judge`: bounded to what the API accepts, so an odd verdict
    can never make the whole status patch fail."""
    score = verdict.get("score")
    scored = isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 1
    return JudgeVerdict(
        scored=scored,
        score=float(score) if scored else None,  # type: ignore[arg-type]
        reason=_shorten(str(verdict.get("reason") or ""), MAX_JUDGE_REASON),
        model=str(verdict.get("model") or "")[:256],
    ).to_k8s()


def result_fields(result: Mapping[str, Any]) -> JsonDict:
    """The status fields the runtime's final result fills: steps, usage, trace id, the answer, the judge's
    verdict and the lesson reflection stored (so `kubectl get -o yaml` shows how the run was judged and
    what its agent learned, even when the run could not patch its own status)."""
    fields: JsonDict = {"stepCount": int(result.get("steps", 0) or 0), "usage": usage_of(result).to_k8s()}
    trace = result.get("traceId")
    if isinstance(trace, str) and len(trace) == 32:
        fields["traceId"] = trace
    answer = result.get("result")
    if isinstance(answer, str):
        fields["result"] = answer[:MAX_RESULT]
    verdict = result.get("judge")
    if isinstance(verdict, Mapping):
        fields["judge"] = judge_fields(verdict)
    reflection = result.get("reflection")
    lesson = reflection.get("lesson") if isinstance(reflection, Mapping) else None
    if isinstance(lesson, str) and lesson.strip():
        fields["lesson"] = _shorten(lesson.strip(), MAX_LESSON)
    return fields
