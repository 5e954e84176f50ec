"""What the signal endpoint needs from Kubernetes, as four small interfaces.

The endpoint and the dispatcher depend only on these, so unit tests run them against in-memory fakes and
the operator plugs in the API-server implementations from `kube`. (A cache-backed `ScheduleIndex` fed by
the operator's watch of AgentSchedules can replace the list-per-event one without touching the endpoint.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from agency_runtime.api.meta import JsonObject
from agency_runtime.api.schedule import AgentSchedule


class KubernetesUnavailable(Exception):
    """The API server could not answer (unreachable, timed out, 5xx): the endpoint answers 503."""


@dataclass(frozen=True)
class Caller:
    """Who sent a signal, as the TokenReview established it; passed on unchanged to the access review."""

    username: str
    uid: str | None = None
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class TokenReviewer(Protocol):
    async def authenticate(self, token: str) -> Caller | None:
        """The caller the bearer token belongs to, or None when it is invalid, expired or was issued for
        another audience."""
        ...


class AccessReviewer(Protocol):
    async def may_send_signals(self, caller: Caller, namespace: str) -> bool:
        """True when RBAC lets `caller` create the virtual resource `signals.agency.dev` in `namespace`."""
        ...


class ScheduleIndex(Protocol):
    async def schedules(self, namespace: str) -> Sequence[AgentSchedule]:
        """The AgentSchedules of a namespace that have signal triggers (others may be included)."""
        ...

    async def record_signal(self, namespace: str, schedule: str, at: datetime) -> None:
        """Set the schedule's status.lastSignalTime: a matching event arrived at `at`."""
        ...


class RunCreator(Protocol):
    async def create(self, manifest: JsonObject) -> bool:
        """Create the AgentRun; False when one of that name already exists (AlreadyExists is success)."""
        ...

    async def exists(self, namespace: str, name: str) -> bool:
        """Whether an AgentRun of that name exists."""
        ...

    async def active_runs(self, namespace: str, schedule: str) -> list[str]:
        """Names of the schedule's runs that have not finished."""
        ...

    async def cancel(self, namespace: str, name: str) -> None:
        """Delete a run (concurrencyPolicy Replace); a run already gone is not an error."""
        ...
