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

An Agent's status counts its runs (in flight, last run, usage today) from the same hints: each holds
the run's tally (`tally.py`) as the last watch event showed it. Listing an Agent's runs for every
status update cost O(runs) each time, for the API server and for the operator's GIL, and held up the
runs starting meanwhile (run-start benchmark, one Agent: p99 111 ms, 37 ms with no Agent reconciles).
The tallies are complete for an Agent once its runs were listed after the operator started
(`tally_listed`; until then the status reconcile lists them); a run deleted while a watch was down
(kopf lists again and sends no DELETED) is dropped by the next pass of the resync, which lists every
run's name (`prune`); and a deleted run's uid is remembered for a while, so a list answered before the
deletion cannot bring it back.

Run admission never counts from these: its daily-budget check lists the runs afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agency_operator.credentials import secret_names
from agency_operator.tally import RunTally
from agency_runtime.api.agent import Agent
from agency_runtime.api.common import RunPhase

Key = tuple[str, str]
_FINISHED = frozenset(phase.value for phase in RunPhase if phase.finished)
#: Seconds a deleted run's uid is remembered (`tally_listed` skips it): longer than any list takes.
FORGET_DELETED_SECONDS = 300.0


@dataclass(frozen=True)
class RunHint:
    """The immutable part of a run as a watch showed it, and whether it was past admission then (started,
    or finished without starting: a refusal that cannot change)."""

    uid: str
    agent: str
    parent: str | None
    past_admission: bool
    phase: str | None = None
    #: When a watch (or a list) first showed this run (monotonic seconds): after its creation, so any
    #: read sent since then sees what the API server held once the run existed (`fresh.py`).
    seen_at: float = 0.0
    #: The resourceVersion the operator's last status write of this run left it at.
    written: str | None = None
    #: What its Agent's status counts of it as the last watch event showed it; the operator's own writes
    #: do not move it (their echo does, and queues the Agent).
    watched: RunTally | None = None
    #: When an event, a list or a write of the operator last showed the run exists (monotonic seconds).
    updated_at: float = 0.0
    #: The resourceVersion of the run's Pod as the answer to the operator's create of it showed it.
    pod_created: str | None = None


@dataclass
class Seen:
    """Latest hints per object, updated from watch events (any thread), read by reconciles."""

    _agents: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    _runs: dict[Key, RunHint] = field(default_factory=dict)
    _agents_written: dict[Key, str] = field(default_factory=dict)
    _agents_ready: dict[Key, bool] = field(default_factory=dict)
    #: Agents whose runs were all listed since the operator started: their tallies here are complete.
    _tallied: set[Key] = field(default_factory=set)
    #: uid of each run deleted lately -> when (monotonic seconds).
    _deleted: dict[str, float] = field(default_factory=dict)
    _deleted_swept: float = field(default_factory=time.monotonic)
    #: (namespace, Agent) -> the names of its runs held in `_runs`.
    _by_agent: dict[Key, set[str]] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def _put(self, key: Key, hint: RunHint) -> None:
        old = self._runs.get(key)
        if old is not None and old.agent != hint.agent:
            self._unindex(key, old)
        self._runs[key] = hint
        self._by_agent.setdefault((key[0], hint.agent), set()).add(key[1])

    def _pop(self, key: Key) -> RunHint | None:
        hint = self._runs.pop(key, None)
        if hint is not None:
            self._unindex(key, hint)
        return hint

    def _unindex(self, key: Key, hint: RunHint) -> None:
        names = self._by_agent.get((key[0], hint.agent))
        if names is not None:
            names.discard(key[1])
            if not names:
                del self._by_agent[(key[0], hint.agent)]

    def agent_seen(self, body: Mapping[str, Any]) -> None:
        """Remember which Secrets an Agent names (an Agent the API models refuse is remembered as none)."""
        try:
            agent = Agent.from_k8s(body)
        except ValueError:
            self.agent_gone(_key(body))
            return
        with self._guard:
            self._agents[_key(body)] = tuple(secret_names(agent))
            self._agents_ready[_key(body)] = _ready(body)

    def agent_gone(self, key: Key) -> None:
        with self._guard:
            self._agents.pop(key, None)
            self._agents_written.pop(key, None)
            self._agents_ready.pop(key, None)
            self._tallied.discard(key)

    def agent_ready(self, namespace: str, name: str) -> bool | None:
        """Whether the Agent's status said Ready when last seen or written; None when never seen."""
        with self._guard:
            return self._agents_ready.get((namespace, name))

    def agent_secrets(self, namespace: str, name: str) -> tuple[str, ...] | None:
        """The Secrets the Agent named when last seen; None when it was never seen."""
        with self._guard:
            return self._agents.get((namespace, name))

    def run_seen(self, body: Mapping[str, Any]) -> bool:
        """Remember the run as this event shows it; whether it is new or what its Agent's status counts
        of it (phase, start, usage) moved since the last event."""
        watched = RunTally.from_k8s(body)
        uid, key, now = str(body["metadata"].get("uid", "")), _key(body), time.monotonic()
        with self._guard:
            found = self._runs.get(key)
            before = found if found is not None and found.uid == uid else None
            self._put(
                key,
                _hint(
                    body,
                    seen_at=before.seen_at if before is not None else now,
                    written=before.written if before is not None else None,
                    watched=watched,
                    updated_at=now,
                    pod_created=before.pod_created if before is not None else None,
                ),
            )
        return before is None or before.watched != watched

    def tally_listed(
        self, namespace: str, agent: str, bodies: Iterable[Mapping[str, Any]], sent_at: float
    ) -> list[RunTally]:
        """The Agent's runs as `bodies` (a list of them sent at `sent_at`) showed them, and what the
        watch showed since; from now on the watch alone keeps them (see module doc)."""
        with self._guard:
            self._forget_deleted(time.monotonic())
            for body in bodies:
                key, uid = _key(body), str(body["metadata"].get("uid", ""))
                if key in self._runs or uid in self._deleted:
                    continue  # the watch showed it since (or its deletion): newer than the list
                tally = RunTally.from_k8s(body)
                self._put(key, _hint(body, seen_at=sent_at, watched=tally, updated_at=sent_at))
            self._tallied.add((namespace, agent))
            return self._tallies(namespace, agent)

    def tallies(self, namespace: str, agent: str) -> list[RunTally] | None:
        """The Agent's runs, when they are all known here (None: list them, then `tally_listed`)."""
        with self._guard:
            if (namespace, agent) not in self._tallied:
                return None
            return self._tallies(namespace, agent)

    def _tallies(self, namespace: str, agent: str) -> list[RunTally]:
        hints = (self._runs[(namespace, name)] for name in self._by_agent.get((namespace, agent), ()))
        return [hint.watched for hint in hints if hint.watched is not None]

    def prune(self, namespace: str | None, listed: set[Key], sent_at: float) -> set[Key]:
        """Forget the runs a list of every run's name (sent at `sent_at`, in `namespace` or the whole
        cluster) no longer holds and nothing showed since; the Agents (namespace, name) that counted them."""
        with self._guard:
            gone = [
                key
                for key, hint in self._runs.items()
                if namespace in (None, key[0]) and key not in listed and hint.updated_at < sent_at
            ]
            agents = set()
            for key in gone:
                hint = self._pop(key)
                if hint is not None:
                    self._deleted[hint.uid] = sent_at
                    agents.add((key[0], hint.agent))
            self._forget_deleted(time.monotonic())
            return agents

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
                self._runs[key] = replace(
                    hint, written=_version(after), updated_at=time.monotonic(), **_progress(status)
                )

    def pod_created(self, run: Mapping[str, Any], version: str | None) -> None:
        """The operator made the run's Pod, and the API server answered with it at `version`: the reconcile
        that made it observed it there, so the Pod's ADDED event is known for its echo (`pod_is_echo`)."""
        key, uid = _key(run), str(run["metadata"].get("uid", ""))
        with self._guard:
            hint = self._runs.get(key)
            if version and hint is not None and hint.uid == uid:
                self._runs[key] = replace(hint, pod_created=version)

    def pod_is_echo(self, pod: Mapping[str, Any], run_name: str) -> bool:
        """Whether a Pod event shows the run's Pod exactly as the answer to its create did: the reconcile
        that made it mirrored that already (its first change, being scheduled, is another version). A Pod
        of another run of that name (another uid) or of an earlier attempt is never an echo."""
        meta = pod["metadata"]
        version, owners = str(meta.get("resourceVersion", "")), meta.get("ownerReferences") or []
        with self._guard:
            hint = self._runs.get((str(meta.get("namespace") or ""), run_name))
            if not version or hint is None or hint.pod_created != version:
                return False
            return any(owner.get("uid") == hint.uid for owner in owners)

    def agent_written(self, after: Mapping[str, Any]) -> None:
        """The operator wrote this Agent's status; `after` is the API server's answer."""
        with self._guard:
            self._agents_written[_key(after)] = _version(after)
            self._agents_ready[_key(after)] = _ready(after)

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
            hint = self._pop(key)
            if hint is not None:
                self._deleted[hint.uid] = time.monotonic()
                self._forget_deleted(time.monotonic())

    def _forget_deleted(self, now: float) -> None:
        """Drop the uids deleted longer ago than FORGET_DELETED_SECONDS; a pass at most that often."""
        if now - self._deleted_swept < FORGET_DELETED_SECONDS:
            return
        self._deleted_swept = now
        for uid in [uid for uid, at in self._deleted.items() if now - at > FORGET_DELETED_SECONDS]:
            del self._deleted[uid]

    def run(self, namespace: str, name: str) -> RunHint | None:
        with self._guard:
            return self._runs.get((namespace, name))

    def sizes(self) -> tuple[int, int]:
        """How many Agents and runs are remembered: nothing is kept for an object that is gone."""
        with self._guard:
            agents = self._agents.keys() | self._agents_written.keys() | self._agents_ready.keys()
            return len(agents | self._tallied), len(self._runs)


def _progress(status: Mapping[str, Any]) -> dict[str, Any]:
    phase = status.get("phase")
    return {
        "past_admission": bool(status.get("startTime")) or phase in _FINISHED,
        "phase": str(phase) if phase else None,
    }


def _hint(body: Mapping[str, Any], **known: Any) -> RunHint:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    parent = (spec.get("parentRunRef") or {}).get("name")
    return RunHint(
        uid=str(body["metadata"].get("uid", "")),
        agent=str((spec.get("agentRef") or {}).get("name", "")),
        parent=str(parent) if parent else None,
        **known,
        **_progress(status),
    )


def _ready(body: Mapping[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _version(body: Mapping[str, Any]) -> str:
    return str(body["metadata"].get("resourceVersion", ""))


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])
