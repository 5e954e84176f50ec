"""What the operator's watches last showed of Agents and AgentRuns: hints for reading side by side.

Starting a run needs the run, its Agent, the namespace's policies, the model Secrets the Agent names
and the parent run, and the Secrets depend on the Agent. Read in that order they are two round trips
before anything is made. The watches (kopf's, which call the handlers) already showed the Agent, so
its Secrets can be read in the same round as everything else.

A hint is never trusted as the truth: every object is still read in that round, the decision is taken
on what the server answered, and a hint that turns out stale (an Agent that now names another Secret)
only costs the round it saved. The reads are sent after the watch first showed the run (`fresh.py` may
answer a run's first admission with such a read that another run sent), so a policy tightened a moment
before a run is created governs that run, as it would with no hints at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agency_operator.credentials import secret_names
from agency_runtime.api.agent import Agent
from agency_runtime.api.common import RunPhase

Key = tuple[str, str]
_FINISHED = frozenset(phase.value for phase in RunPhase if phase.finished)


@dataclass(frozen=True)
class RunHint:
    """The immutable part of a run as a watch showed it, and whether it was past admission then (started,
    or finished without starting: a refusal that cannot change)."""

    uid: str
    agent: str
    parent: str | None
    past_admission: bool
    phase: str | None = None
    #: When a watch first showed this run (monotonic seconds): after its creation, so any read sent since
    #: then sees what the API server held once the run existed (`fresh.py`).
    seen_at: float = 0.0
    #: The resourceVersion the operator's last status write of this run left it at.
    written: str | None = None
    #: What its Agent's status counts (phase, startTime, usage) as the last watch event showed it; the
    #: operator's own writes do not move it.
    watched: tuple[object, ...] = ()


@dataclass
class Seen:
    """Latest hints per object, updated from watch events (any thread), read by reconciles."""

    _agents: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    _runs: dict[Key, RunHint] = field(default_factory=dict)
    _agents_written: dict[Key, str] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def agent_seen(self, body: Mapping[str, Any]) -> None:
        """Remember which Secrets an Agent names (an Agent the API models refuse is remembered as none)."""
        try:
            agent = Agent.from_k8s(body)
        except ValueError:
            self.agent_gone(_key(body))
            return
        with self._guard:
            self._agents[_key(body)] = tuple(secret_names(agent))

    def agent_gone(self, key: Key) -> None:
        with self._guard:
            self._agents.pop(key, None)
            self._agents_written.pop(key, None)

    def agent_secrets(self, namespace: str, name: str) -> tuple[str, ...] | None:
        """The Secrets the Agent named when last seen; None when it was never seen."""
        with self._guard:
            return self._agents.get((namespace, name))

    def run_seen(self, body: Mapping[str, Any]) -> bool:
        """Remember the run as this event shows it; whether it is new or what its Agent's status counts
        of it (phase, start, usage) moved since the last event."""
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        watched = (status.get("phase"), status.get("startTime"), repr(status.get("usage")))
        parent = (spec.get("parentRunRef") or {}).get("name")
        uid, key, now = str(body["metadata"].get("uid", "")), _key(body), time.monotonic()
        with self._guard:
            found = self._runs.get(key)
            before = found if found is not None and found.uid == uid else None
            self._runs[key] = RunHint(
                uid=uid,
                agent=str((spec.get("agentRef") or {}).get("name", "")),
                parent=str(parent) if parent else None,
                seen_at=before.seen_at if before is not None else now,
                written=before.written if before is not None else None,
                watched=watched,
                **_progress(status),
            )
        return before is None or before.watched != watched

    def run_written(
        self, body: Mapping[str, Any], status: Mapping[str, Any], after: Mapping[str, Any]
    ) -> None:
        """The operator wrote this status, and the API server answered with `after`: the hint follows at
        once rather than at the watch's echo (a Pod event in between would otherwise read again what a
        started run no longer needs), and the echo itself is known for what it is (`run_is_echo`)."""
        key, uid = _key(body), str(body["metadata"].get("uid", ""))
        with self._guard:
            hint = self._runs.get(key)
            if hint is not None and hint.uid == uid:
                self._runs[key] = replace(hint, written=_version(after), **_progress(status))

    def agent_written(self, after: Mapping[str, Any]) -> None:
        """The operator wrote this Agent's status; `after` is the API server's answer."""
        with self._guard:
            self._agents_written[_key(after)] = _version(after)

    def run_is_echo(self, body: Mapping[str, Any]) -> bool:
        """Whether a watch event shows the run exactly as the operator's own status write left it: nothing
        changed since that reconcile, so there is nothing to reconcile again (any other change, by anyone,
        is another resourceVersion)."""
        key, version = _key(body), _version(body)
        with self._guard:
            hint = self._runs.get(key)
            if not version or hint is None:
                return False
            return hint.uid == body["metadata"].get("uid") and hint.written == version

    def agent_is_echo(self, body: Mapping[str, Any]) -> bool:
        """`run_is_echo`, for an Agent's status write."""
        key, version = _key(body), _version(body)
        with self._guard:
            return bool(version) and self._agents_written.get(key) == version

    def run_gone(self, key: Key) -> None:
        with self._guard:
            self._runs.pop(key, None)

    def run(self, namespace: str, name: str) -> RunHint | None:
        with self._guard:
            return self._runs.get((namespace, name))

    def sizes(self) -> tuple[int, int]:
        """How many Agents and runs are remembered: nothing is kept for an object that is gone."""
        with self._guard:
            return len(self._agents.keys() | self._agents_written.keys()), len(self._runs)


def _progress(status: Mapping[str, Any]) -> dict[str, Any]:
    phase = status.get("phase")
    return {
        "past_admission": bool(status.get("startTime")) or phase in _FINISHED,
        "phase": str(phase) if phase else None,
    }


def _version(body: Mapping[str, Any]) -> str:
    return str(body["metadata"].get("resourceVersion", ""))


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])
