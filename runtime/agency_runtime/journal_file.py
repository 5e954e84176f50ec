"""The local file journal: one directory per run, for `agency run` and the `local` executor.

Layout of `<root>/<run id>/`:

- `journal.jsonl`: the records, one JSON object a line, each appended with a single write and fsync'd;
- `epoch-00000001`, `epoch-00000002`, ...: one empty file per process that opened the journal, created with
  O_EXCL so two processes can never take the same epoch;
- `lock`: an fcntl lock held while taking an epoch and while appending, so "check that no newer epoch
  exists, then write" is atomic with respect to a newer process taking over.

A process killed in the middle of a write can leave a torn last line; the next `open()` cuts it off (it
was never acknowledged, so nothing depended on it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from agency_runtime.journal import Fenced, Journal, JournalCorrupt, JsonDict, Kind, Record

JOURNAL = "journal.jsonl"
LOCK = "lock"
EPOCH_PREFIX = "epoch-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _epoch_name(epoch: int) -> str:
    return f"{EPOCH_PREFIX}{epoch:08d}"


class FileJournal(Journal):
    """The journal of one run in `directory` (created if missing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._epoch = 0
        self._next_seq = 1
        self._fd: int | None = None

    @property
    def epoch(self) -> int:
        return self._epoch

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _epochs(self) -> list[int]:
        found = []
        for entry in self.directory.iterdir():
            if entry.name.startswith(EPOCH_PREFIX):
                with contextlib.suppress(ValueError):
                    found.append(int(entry.name.removeprefix(EPOCH_PREFIX)))
        return found

    def open(self) -> list[Record]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            epoch = max(self._epochs(), default=0) + 1
            while True:
                try:
                    os.close(
                        os.open(
                            self.directory / _epoch_name(epoch), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600
                        )
                    )
                    break
                except FileExistsError:
                    epoch += 1
            self._epoch = epoch
            records = self._read_and_repair()
            self._fd = os.open(self.directory / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            _fsync_dir(self.directory)
        self._next_seq = (records[-1].seq + 1) if records else 1
        return records

    def _read_and_repair(self) -> list[Record]:
        path = self.directory / JOURNAL
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with path.open("r+b") as handle:  # a torn last line from a killed writer: never acknowledged
                handle.truncate(len(complete))
                handle.flush()
                os.fsync(handle.fileno())
        records = []
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(Record.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError) as err:
                raise JournalCorrupt(f"{path}, line {number}: {err}") from None
        return records

    def fenced(self) -> bool:
        """True when a newer process has taken an epoch after this one."""
        return (self.directory / _epoch_name(self._epoch + 1)).exists() or any(
            e > self._epoch for e in self._epochs()
        )

    def append(self, kind: Kind, key: str, data: JsonDict) -> Record:
        if self._fd is None:
            raise RuntimeError("open() the journal before appending")
        with self._locked():
            if self.fenced():
                raise Fenced(
                    f"journal {self.directory}: a newer process (epoch > {self._epoch}) took over this run"
                )
            record = Record(self._next_seq, self._epoch, kind, key, data, at=time.time())
            line = (json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True) + "\n").encode()
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"journal {self.directory}: short write ({written} of {len(line)} bytes)")
            os.fsync(self._fd)
        self._next_seq += 1
        return record

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def file_journal_for(root: Path, run_id: str) -> FileJournal:
    """The journal of run `run_id` under `root` (the directory of `AGENCY_JOURNAL=file:<root>`)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    return FileJournal(root / safe)
