"""The step journal: an append-only, write-ahead record of a run, so a new process can continue it.

Before each model or tool call the loop appends an INTENT record; after it, the full RESULT. A process
that starts for a run already under way replays the records: answered model calls are not asked again,
finished tool calls are not made again, and a call with an intent but no result is retried only when
that is safe (see `loop`). Records live outside the AgentRun object (etcd limits objects to ~1.5 MiB).

Fencing: each process opening a journal takes the next EPOCH, and every append checks that no newer
epoch exists, so of two processes of one run only the newest can write; the older one stops (`Fenced`).

Backends implement `Journal`: `journal_file.FileJournal` (one directory per run: JSON lines, fsync,
O_EXCL epoch files) now; a Kubernetes backend (ConfigMaps owned by the run, the epoch as a lease object,
appends as resourceVersion compare-and-swap) fits the same three methods.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JsonDict = dict[str, Any]


class Fenced(Exception):
    """A newer process took over this run's journal; this one must stop without writing again."""


class JournalCorrupt(Exception):
    """A journal record cannot be read back; the message names where."""


class Kind(StrEnum):
    """What a record says."""

    STARTED = "started"
    """The run's first start: when (wall time, for the wall-time limit) and what it was given."""
    INTENT = "intent"
    """A model or tool call is about to be made."""
    RESULT = "result"
    """A call's full result (a model answer, or a tool's outcome)."""
    EVENT = "event"
    """Something worth keeping that is not a call: a notification, a refused tool, a resume."""
    PROPOSAL = "proposal"
    """A tool call held for approval."""
    FINISHED = "finished"
    """The run's final result; a process that finds it only reports it again."""


@dataclass(frozen=True)
class Record:
    """One journal entry. `key` names the call it belongs to (`step-3/model`, `step-3/tool-0`)."""

    seq: int
    epoch: int
    kind: Kind
    key: str
    data: JsonDict = field(default_factory=dict)
    at: float = 0.0

    def to_json(self) -> JsonDict:
        return {
            "seq": self.seq,
            "epoch": self.epoch,
            "kind": self.kind.value,
            "key": self.key,
            "at": self.at,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, raw: JsonDict) -> Record:
        return cls(
            seq=int(raw["seq"]),
            epoch=int(raw["epoch"]),
            kind=Kind(raw["kind"]),
            key=str(raw["key"]),
            data=dict(raw.get("data") or {}),
            at=float(raw.get("at", 0.0)),
        )


class Journal(abc.ABC):
    """One run's journal. `open()` first (takes an epoch, returns what earlier processes wrote)."""

    @abc.abstractmethod
    def open(self) -> list[Record]:
        """Take the next epoch (atomically) and return every record so far, oldest first."""

    @abc.abstractmethod
    def append(self, kind: Kind, key: str, data: JsonDict) -> Record:
        """Durably append one record; raises Fenced when a newer epoch exists."""

    @property
    @abc.abstractmethod
    def epoch(self) -> int:
        """This process's epoch (0 before `open`)."""

    def close(self) -> None:  # noqa: B027 - optional for backends
        """Release what the backend holds open."""


@dataclass
class Replay:
    """What earlier processes recorded, indexed for the loop: results and intents by call key."""

    records: list[Record]
    results: dict[str, Record] = field(default_factory=dict)
    intents: dict[str, Record] = field(default_factory=dict)
    proposals: dict[str, Record] = field(default_factory=dict)
    started: Record | None = None
    finished: Record | None = None

    @classmethod
    def of(cls, records: Iterable[Record]) -> Replay:
        replay = cls(records=list(records))
        for record in replay.records:
            if record.kind is Kind.RESULT:
                replay.results[record.key] = record
            elif record.kind is Kind.INTENT:
                replay.intents[record.key] = record
            elif record.kind is Kind.PROPOSAL:
                replay.proposals[record.key] = record
            elif record.kind is Kind.STARTED and replay.started is None:
                replay.started = record
            elif record.kind is Kind.FINISHED:
                replay.finished = record
        return replay

    def result(self, key: str) -> JsonDict | None:
        record = self.results.get(key)
        return None if record is None else record.data

    def dangling(self, key: str) -> Record | None:
        """The intent of a call that was started by an earlier process but has no result."""
        if key in self.results:
            return None
        return self.intents.get(key)
