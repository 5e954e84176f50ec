"""In-memory implementations of the signal endpoint's interfaces (ports), for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from agency_operator.triggers.history import SCHEDULE_LABEL
from agency_operator.triggers.signals.ports import Caller
from agency_runtime.api.schedule import AgentSchedule

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own, leaving the thread's current event loop alone.

    Not asyncio.run(): it replaces (and so orphans, unclosed) a loop that libraries such as litellm set
    as the thread's current loop in earlier tests, which pytest then reports as an unraisable warning.
    """
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coroutine)


@dataclass
class FakeTokens:
    """Tokens it knows map to callers; everything else is refused."""

    callers: dict[str, Caller] = field(default_factory=dict)

    async def authenticate(self, token: str) -> Caller | None:
        return self.callers.get(token)


@dataclass
class FakeAccess:
    """Grants (username, namespace) pairs."""

    grants: set[tuple[str, str]] = field(default_factory=set)

    async def may_send_signals(self, caller: Caller, namespace: str) -> bool:
        return (caller.username, namespace) in self.grants


@dataclass
class FakeSchedules:
    by_namespace: dict[str, list[AgentSchedule]] = field(default_factory=dict)

    signal_times: dict[tuple[str, str], datetime] = field(default_factory=dict)

    async def schedules(self, namespace: str) -> Sequence[AgentSchedule]:
        return self.by_namespace.get(namespace, [])

    async def record_signal(self, namespace: str, schedule: str, at: datetime) -> None:
        self.signal_times[(namespace, schedule)] = at


@dataclass
class FakeRuns:
    """AgentRuns by (namespace, name), with AlreadyExists on a second create."""

    runs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)

    async def create(self, manifest: dict[str, Any]) -> bool:
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        if key in self.runs:
            return False
        self.runs[key] = manifest
        return True

    async def exists(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.runs

    async def active_runs(self, namespace: str, schedule: str) -> list[str]:
        return sorted(
            name
            for (ns, name), run in self.runs.items()
            if ns == namespace
            and run["metadata"]["labels"].get(SCHEDULE_LABEL) == schedule
            and run.get("status", {}).get("phase")
            not in ("Succeeded", "Failed", "Cancelled", "BudgetExceeded")
        )

    async def cancel(self, namespace: str, name: str) -> None:
        self.cancelled.append(name)
        self.runs.pop((namespace, name), None)

    def names(self) -> list[str]:
        return sorted(name for _, name in self.runs)
