"""The Kubernetes journal: a run's records in ConfigMaps it owns, fenced by compare-and-swap on one object.

Objects, all in the run's namespace, owned by the AgentRun (garbage-collected with it; the reference does not
block the run's deletion) and labelled with it:

- `agency-run-<run>.journal-head`: the epoch record. Its data holds `epoch` (the newest process's), `chunks`
  (how many sealed chunks precede the tail) and `records`, the newest records as JSON lines (the tail).
  Every write to it is a PUT carrying the resourceVersion last seen, so it succeeds only if nobody wrote
  in between: taking an epoch and appending are both compare-and-swaps on this one object, which is what
  fences an older process (its next append conflicts, it re-reads, sees a newer epoch and stops).
- `agency-run-<run>.journal-c0001`, `.journal-c0002`, ...: sealed chunks, immutable. When the tail grows past
  `SEAL_BYTES` it is copied into the next chunk and the head's tail emptied (one CAS), so no object comes near
  the 1 MiB limit. A chunk written by a process that died (or was fenced) before its head update is found
  by the next seal under the same name; it can only hold records the head had committed, so it must be a
  prefix of the tail, and the seal goes on from there.

Names are fixed in advance (head plus at most `MAX_CHUNKS` chunks), so the run's Role can name every one of
them in resourceNames for get and update (`journal_rules`); only `create` has to be granted without names,
and the `run-journals` ValidatingAdmissionPolicy (api/admission.py) limits what a run may create.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable
from typing import Any

from agency_runtime.journal import Fenced, Journal, JournalCorrupt, JsonDict, Kind, Record
from agency_runtime.kube import KubeApiError, KubeClient, RunObject, resource_path

SEAL_BYTES = 256 * 1024
MAX_RECORD_BYTES = 512 * 1024
MAX_CHUNKS = 64
#: How long a call keeps being retried while the API server is unreachable or overloaded (it restarts, or the
#: control plane is upgraded); past that the process stops, and a new one continues from the journal.
UNAVAILABLE_SECONDS = 120.0
MAX_BACKOFF_SECONDS = 5.0
LABEL_RUN = "agency.dev/run"
LABEL_RUN_UID = "agency.dev/run-uid"
COMPONENT = "app.kubernetes.io/component"


class JournalFull(JournalCorrupt):
    """The run wrote more than MAX_CHUNKS sealed chunks; it cannot journal (so cannot go on) safely."""


def head_name(run: str) -> str:
    return f"agency-run-{run}.journal-head"


def chunk_name(run: str, index: int) -> str:
    return f"agency-run-{run}.journal-c{index:04d}"


def journal_object_names(run: str) -> list[str]:
    """Every ConfigMap name the run's journal may use, head first."""
    return [head_name(run), *(chunk_name(run, i) for i in range(1, MAX_CHUNKS + 1))]


def journal_rules(run: str) -> list[JsonDict]:
    """The RBAC rules the run's Role needs for its journal: the least that works.

    `create` cannot be limited by name in RBAC (the admission policy limits it); reading is limited to the
    journal's own names, updating to the head (chunks are immutable). No list or watch: the run never needs
    to see other ConfigMaps of its namespace.
    """
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": journal_object_names(run),
            "verbs": ["get"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [head_name(run)],
            "verbs": ["update"],
        },
    ]


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def _parse(lines: list[str], where: str) -> list[Record]:
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(Record.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            raise JournalCorrupt(f"{where}, record {number}: {err}") from None
    return records


def _transient(err: KubeApiError) -> bool:
    return err.status in {0, 429, 500, 502, 503, 504}


class KubeJournal(Journal):
    """The journal of one run, kept in ConfigMaps next to its AgentRun."""

    def __init__(
        self,
        client: KubeClient,
        run: RunObject,
        *,
        sleep: Callable[[float], None] = time.sleep,
        seal_bytes: int = SEAL_BYTES,
    ) -> None:
        self.client = client
        self.run = run
        self.sleep = sleep
        self.seal_bytes = seal_bytes
        self._epoch = 0
        self._next_seq = 1
        self._head: JsonDict | None = None
        self._tail: list[str] = []

    @property
    def epoch(self) -> int:
        return self._epoch

    # --- objects ------------------------------------------------------------------------------------------

    def _path(self, name: str | None = None) -> str:
        return resource_path("v1", "configmaps", self.run.namespace, name)

    def _metadata(self, name: str) -> JsonDict:
        return {
            "name": name,
            "namespace": self.run.namespace,
            "labels": {LABEL_RUN: self.run.name, LABEL_RUN_UID: self.run.uid, COMPONENT: "journal"},
            "ownerReferences": [self.run.owner_reference()],
        }

    def _call(self, action: Callable[[], JsonDict]) -> JsonDict:
        """One API call, retried with backoff while the API server is unreachable or overloaded, for up to
        UNAVAILABLE_SECONDS (a restart of kube-apiserver takes longer than a few quick retries). A server
        that is coming back answers 401 or 403 for a moment, until its token and RBAC caches are loaded:
        after an unavailable answer, those are retried too."""
        deadline = time.monotonic() + UNAVAILABLE_SECONDS
        attempt = 0
        coming_back = False
        while True:
            try:
                return action()
            except KubeApiError as err:
                retry = _transient(err) or (coming_back and err.status in {401, 403})
                if not retry or time.monotonic() >= deadline:
                    raise
                coming_back = True
                self.sleep(min(0.2 * 2**attempt, MAX_BACKOFF_SECONDS))
                attempt += 1

    def _get(self, name: str) -> JsonDict | None:
        try:
            return self._call(lambda: self.client.get(self._path(name)))
        except KubeApiError as err:
            if err.not_found:
                return None
            raise

    @staticmethod
    def _data(head: JsonDict) -> dict[str, str]:
        data: dict[str, str] = head.get("data") or {}
        return data

    def _put_head(self, data: dict[str, str]) -> JsonDict:
        """CAS the head: 409 Conflict when anyone wrote it since we last read or wrote it."""
        if self._head is None:
            raise RuntimeError("open() the journal before appending")
        body = copy.deepcopy(self._head)
        body["data"] = data
        name = head_name(self.run.name)
        return self._call(lambda: self.client.replace(self._path(name), body))

    # --- open ---------------------------------------------------------------------------------------------

    def open(self) -> list[Record]:
        name = head_name(self.run.name)
        while True:
            head = self._get(name)
            if head is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": self._metadata(name),
                    "data": {"epoch": "1", "chunks": "0", "records": ""},
                }
                try:
                    self._head = self._call(functools.partial(self.client.create, self._path(), body))
                except KubeApiError as err:
                    if err.already_exists:
                        continue  # another process created it first: take the next epoch after it
                    raise
                self._epoch = 1
                break
            data = dict(self._data(head))
            data["epoch"] = str(int(data.get("epoch", "0")) + 1)
            self._head = head
            try:
                self._head = self._put_head(data)
            except KubeApiError as err:
                if err.conflict:
                    continue  # someone wrote in between: read again and take the epoch after theirs
                raise
            self._epoch = int(data["epoch"])
            break
        records = self._read_all()
        self._next_seq = (records[-1].seq + 1) if records else 1
        return records

    def _read_all(self) -> list[Record]:
        assert self._head is not None  # noqa: S101 - set by open()
        data = self._data(self._head)
        records: list[Record] = []
        for index in range(1, int(data.get("chunks", "0")) + 1):
            name = chunk_name(self.run.name, index)
            chunk = self._get(name)
            if chunk is None:
                raise JournalCorrupt(f"journal chunk ConfigMap {self.run.namespace}/{name} is missing")
            records += _parse(_lines(self._data(chunk).get("records", "")), f"ConfigMap {name}")
        self._tail = _lines(data.get("records", ""))
        records += _parse(self._tail, f"ConfigMap {head_name(self.run.name)}")
        return records

    # --- append -------------------------------------------------------------------------------------------

    def _reread(self) -> None:
        """After a conflict: stop if a newer process took over, else continue from what the head holds."""
        head = self._get(head_name(self.run.name))
        if head is None:
            raise JournalCorrupt(
                f"journal head ConfigMap {self.run.namespace}/{head_name(self.run.name)} is gone"
            )
        epoch = int(self._data(head).get("epoch", "0"))
        if epoch > self._epoch:
            raise Fenced(
                f"journal {self.run.namespace}/{head_name(self.run.name)}: a newer process (epoch {epoch}) "
                f"took over this run from epoch {self._epoch}"
            )
        self._head = head
        self._tail = _lines(self._data(head).get("records", ""))

    def append(self, kind: Kind, key: str, data: JsonDict) -> Record:
        if self._head is None:
            raise RuntimeError("open() the journal before appending")
        record = Record(self._next_seq, self._epoch, kind, key, data, at=time.time())
        line = json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True)
        if len(line.encode()) > MAX_RECORD_BYTES:
            raise JournalFull(
                f"record {key} is {len(line.encode())} bytes, over the {MAX_RECORD_BYTES} limit"
            )
        while True:
            tail_bytes = sum(len(t.encode()) + 1 for t in self._tail)
            if self._tail and tail_bytes + len(line.encode()) > self.seal_bytes:
                self._seal()
                continue
            head_data = dict(self._data(self._head))
            head_data["records"] = "\n".join([*self._tail, line]) + "\n"
            try:
                self._head = self._put_head(head_data)
            except KubeApiError as err:
                if not err.conflict:
                    raise
                self._reread()
                if self._tail and self._written(line):
                    break  # an earlier attempt landed although its answer was lost
                continue
            self._tail.append(line)
            break
        self._next_seq += 1
        return record

    def _written(self, line: str) -> bool:
        return any(t == line for t in self._tail)

    def _seal(self) -> None:
        """Move the tail into the next immutable chunk and empty it in the head."""
        assert self._head is not None  # noqa: S101 - set by open()
        head_data = dict(self._data(self._head))
        index = int(head_data.get("chunks", "0")) + 1
        if index > MAX_CHUNKS:
            raise JournalFull(
                f"the journal of run {self.run.name} is full ({MAX_CHUNKS} chunks of {self.seal_bytes} bytes)"
            )
        name = chunk_name(self.run.name, index)
        sealed = list(self._tail)
        body: JsonDict = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self._metadata(name),
            "immutable": True,
            "data": {"records": "\n".join(sealed) + "\n"},
        }
        try:
            self._call(lambda: self.client.create(self._path(), body))
        except KubeApiError as err:
            if not err.already_exists:
                raise
            existing = self._get(name)
            sealed = _lines(self._data(existing or {}).get("records", ""))
            if sealed != self._tail[: len(sealed)]:
                self._reread()  # a newer process sealed it: this one is fenced, not the journal corrupt
                raise JournalCorrupt(
                    f"journal chunk ConfigMap {self.run.namespace}/{name} holds records the head never had"
                ) from None
        head_data["chunks"] = str(index)
        remaining = self._tail[len(sealed) :]
        head_data["records"] = "".join(t + "\n" for t in remaining)
        try:
            self._head = self._put_head(head_data)
        except KubeApiError as err:
            if not err.conflict:
                raise
            self._reread()
            return
        self._tail = remaining

    def close(self) -> None:
        self._head = None


def kube_journal_for(client: KubeClient, run: RunObject, **kwargs: Any) -> KubeJournal:
    """The journal of `run` (what `AGENCY_JOURNAL=kubernetes` selects)."""
    return KubeJournal(client, run, **kwargs)
