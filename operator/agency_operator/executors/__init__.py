"""Executors start a run's runtime process and report what became of it: in a Pod, or as a local process.

Both receive the same `Launch` (the run, its agent and policy, budget, run file, trace parent) and build
the environment through `environment.build_run_env`; they differ only in placement (paths, API address)
and in how the model key arrives (a `secretKeyRef` in the Pod, the Secret's value for a local process).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from agency_operator.kube import JsonDict
from agency_runtime.api.agent import Agent
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.api.run import AgentRun
from agency_runtime.contract import Budget


class Progress(StrEnum):
    """How far the runtime process is."""

    ABSENT = "Absent"
    PENDING = "Pending"
    RUNNING = "Running"
    FINISHED = "Finished"


@dataclass(frozen=True)
class Observation:
    """What an executor sees of a run's process; `result` is the runtime's final JSON when it wrote one."""

    progress: Progress
    started_at: datetime | None = None
    exit_code: int | None = None
    result: JsonDict | None = None
    detail: str = ""
    attempt: int = 0
    """Which process of the run this is: 0 first, one more each time it continues after an approval."""
    version: str | None = None
    """The resourceVersion of the object observed (the run's Pod), when the executor has one."""


@dataclass(frozen=True)
class Launch:
    """Everything an executor needs to start a run."""

    body: Mapping[str, Any]
    run: AgentRun
    agent: Agent
    policy: AgentPolicy
    budget: Budget
    run_file: JsonDict
    trace_parent: str | None
    attempt: int = 0


class Executor(Protocol):
    #: Whether every change of a started run's process arrives as a watch event (a Pod's do; a local
    #: process's end does not), so the resync need not poll it.
    event_driven: bool

    def prepare(self, launch: Launch) -> Sequence[JsonDict]:
        """Objects the run's process needs that need nothing the run's identity makes: created beside
        the identity, before `start` (and left as they are when they exist)."""

    def start(self, launch: Launch) -> Observation | None:
        """Start the run's process unless it was started before (idempotent); what `prepare` gave exists.
        Where the process is then, when starting it told (a Pod's create answers with the Pod), else None
        and the caller observes it."""

    def observe(self, body: Mapping[str, Any]) -> Observation:
        """Where the run's latest process is now."""

    def stop(self, body: Mapping[str, Any]) -> None:
        """The run was deleted: stop its process and drop its files (the Pod executor leaves it to the GC)."""

    def sweep(self) -> int:
        """At startup: stop and drop what runs deleted while no operator ran left behind; how many."""


def parse_result(text: str | None) -> JsonDict | None:
    """The runtime's final result: the last line of `text` that is a JSON object with a phase."""
    for line in reversed((text or "").strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "phase" in value:
            return value
    if text:
        try:
            whole = json.loads(text)
        except ValueError:
            return None
        if isinstance(whole, dict) and "phase" in whole:
            return whole
    return None
