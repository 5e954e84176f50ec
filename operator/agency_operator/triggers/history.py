"""Which of a schedule's runs are active and which finished ones to delete under the history limits.

Pure functions over AgentRun objects as the API server returns them (dicts), so the handler can feed them
the result of a list call or kopf's index without converting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agency_runtime.api.common import RunPhase

#: The label every run started by a schedule carries: `agency.dev/schedule=<schedule name>`.
SCHEDULE_LABEL = "agency.dev/schedule"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _phase(run: Mapping[str, Any]) -> RunPhase | None:
    value = (run.get("status") or {}).get("phase")
    try:
        return RunPhase(value) if value else None
    except ValueError:
        return None


def _name(run: Mapping[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("name", ""))


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def is_finished(run: Mapping[str, Any]) -> bool:
    """True once the run reached a phase it never leaves (Succeeded, Failed, BudgetExceeded, Cancelled)."""
    phase = _phase(run)
    return phase is not None and phase.finished


def active_run_names(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the runs that have not finished and are not being deleted, sorted: the ones the
    concurrency policy looks at. A run without a phase yet counts as active (it is about to start)."""
    return sorted(
        _name(run)
        for run in runs
        if not is_finished(run) and not (run.get("metadata") or {}).get("deletionTimestamp")
    )


@dataclass(frozen=True)
class FinishedRun:
    """A run that finished: whether it succeeded and when it finished."""

    name: str
    succeeded: bool
    finished_at: datetime


def finished_run(run: Mapping[str, Any]) -> FinishedRun | None:
    """The history facts of one AgentRun object, or None while it has not finished.

    Finish time is status.completionTime, else the creation time (a run cancelled before it started has
    no completion time), else the epoch (so a run without times is the first to go).
    """
    phase = _phase(run)
    if phase is None or not phase.finished:
        return None
    status = run.get("status") or {}
    metadata = run.get("metadata") or {}
    when = _time(status.get("completionTime")) or _time(metadata.get("creationTimestamp")) or _EPOCH
    return FinishedRun(_name(run), phase == RunPhase.SUCCEEDED, when)


def runs_to_delete(finished: Iterable[FinishedRun], successful_limit: int, failed_limit: int) -> list[str]:
    """The finished runs beyond the history limits, oldest first: keep the newest `successful_limit`
    succeeded runs and the newest `failed_limit` others (Failed, BudgetExceeded, Cancelled).

    Ties on finish time are broken by name so that two replicas choose the same runs.
    """
    succeeded: list[FinishedRun] = []
    failed: list[FinishedRun] = []
    for run in finished:
        (succeeded if run.succeeded else failed).append(run)
    doomed: list[FinishedRun] = []
    for group, limit in ((succeeded, successful_limit), (failed, failed_limit)):
        group.sort(key=lambda run: (run.finished_at, run.name), reverse=True)
        doomed.extend(group[max(0, limit) :])
    doomed.sort(key=lambda run: (run.finished_at, run.name))
    return [run.name for run in doomed]
