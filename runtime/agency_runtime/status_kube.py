"""Live status: the run patches its own AgentRun's status after every step, so `kubectl get` shows progress.

The run writes only what it knows best (steps, usage, trace id, its plan, the proposals waiting for a
decision and, at the end, the judge's verdict and the lesson it learned), as a JSON merge patch of the
`status` subresource (its Role allows exactly that, for its own name). Phase and conditions stay the
operator's. A patch that fails is logged and the next step's patch carries the newer state anyway; a
status write never stops a run.
"""

from __future__ import annotations

import logging

from agency_runtime.api.common import RunPhase
from agency_runtime.api.common import Usage as ApiUsage
from agency_runtime.api.run import MAX_JUDGE_REASON, MAX_LESSON, MAX_PLAN, JudgeVerdict
from agency_runtime.approvals import pending_approval
from agency_runtime.budget import Usage
from agency_runtime.kube import KubeApiError, KubeClient, RunObject
from agency_runtime.loop import Progress, RunResult
from agency_runtime.report import StatusReporter
from agency_runtime.tools.base import JsonDict

log = logging.getLogger("agency_runtime.status")


def _usage(usage: Usage) -> JsonDict:
    return ApiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.input_tokens + usage.output_tokens,
        cost_usd=usage.cost_usd,
    ).to_k8s()


def _plan(plan: str | None) -> str | None:
    if plan is None or len(plan) <= MAX_PLAN:
        return plan
    return plan[: MAX_PLAN - 3] + "..."


def status_patch(
    steps: int, usage: Usage, trace_id: str | None, plan: str | None, pending: list[JsonDict]
) -> JsonDict:
    """The merge patch of status the run writes: never phase or conditions (the operator's)."""
    status: JsonDict = {"stepCount": steps, "usage": _usage(usage), "pendingApprovals": pending}
    if trace_id:
        status["traceId"] = trace_id
    if plan is not None:
        status["plan"] = _plan(plan)
    return {"status": status}


def progress_patch(progress: Progress) -> JsonDict:
    """After a step nothing waits for a decision: a resumed run clears the proposal it showed."""
    return status_patch(progress.steps, progress.usage, progress.trace_id, progress.plan, [])


def result_patch(result: RunResult) -> JsonDict:
    pending = (
        [pending_approval(result.proposal)]
        if result.phase is RunPhase.WAITING_FOR_APPROVAL
        and result.proposal
        and "proposalId" in result.proposal
        else []
    )
    patch = status_patch(result.steps, result.usage, result.trace_id, result.plan, pending)
    if result.judge is not None:
        patch["status"]["judge"] = judge_status(result.judge)
    lesson = (result.reflection or {}).get("lesson")
    if isinstance(lesson, str) and lesson.strip():
        patch["status"]["lesson"] = _shorten(lesson.strip(), MAX_LESSON)
    return patch


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def judge_status(verdict: JsonDict) -> JsonDict:
    """The judge's verdict as `status.judge` (the reason shortened to what the API allows)."""
    score = verdict.get("score")
    scored = isinstance(score, int | float) and not isinstance(score, bool)
    return JudgeVerdict(
        scored=scored,
        score=float(score) if scored else None,  # type: ignore[arg-type]
        reason=_shorten(str(verdict.get("reason") or ""), MAX_JUDGE_REASON),
        model=str(verdict.get("model") or "")[:256],
    ).to_k8s()


class KubeStatusReporter(StatusReporter):
    """Patches the run's AgentRun status; failures are logged, counted and never raised."""

    def __init__(self, client: KubeClient, run: RunObject) -> None:
        self.client = client
        self.run = run
        self.failures = 0
        self.patches = 0

    def _patch(self, body: JsonDict) -> None:
        try:
            self.client.patch(self.run.path("status"), body)
        except KubeApiError as err:
            self.failures += 1
            log.warning(
                "cannot patch the status of AgentRun %s/%s (the next step tries again): %s",
                self.run.namespace,
                self.run.name,
                err,
            )
            return
        self.patches += 1

    def progress(self, progress: Progress) -> None:
        self._patch(progress_patch(progress))

    def report(self, result: RunResult) -> None:
        self._patch(result_patch(result))
