"""Agent memory: notes an agent keeps (per run, or across runs of the agent), and the lessons it learned.

The local backend is one JSON file; a Kubernetes backend (a ConfigMap per agent) can implement the same
`MemoryStore`. Lessons are notes whose key starts with `lesson`: the loop puts them in the system prompt.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agency_runtime.api.common import Risk
from agency_runtime.tools.base import JsonDict, Tool, ToolContext, ToolError, ToolOutcome

LESSON_PREFIX = "lesson"
MAX_VALUE_CHARS = 8_000


class MemoryStore(abc.ABC):
    """Notes by key, newest last; writing an existing key replaces it (so writes are idempotent)."""

    @abc.abstractmethod
    def entries(self) -> list[JsonDict]:
        """Every note as `{"key", "value", "at"}`, oldest first."""

    @abc.abstractmethod
    def write(self, key: str, value: str) -> None:
        """Set a note; the oldest notes are dropped beyond the store's limit."""

    def lessons(self) -> list[str]:
        return [str(e["value"]) for e in self.entries() if str(e["key"]).startswith(LESSON_PREFIX)]


class FileMemory(MemoryStore):
    """Notes in one JSON file, written atomically under an fcntl lock."""

    def __init__(self, path: Path, max_entries: int = 100) -> None:
        self.path = path
        self.max_entries = max_entries

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load(self) -> list[JsonDict]:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [dict(e) for e in data] if isinstance(data, list) else []

    def entries(self) -> list[JsonDict]:
        return self._load()

    def write(self, key: str, value: str) -> None:
        with self._locked():
            notes = [e for e in self._load() if e.get("key") != key]
            notes.append({"key": key, "value": value, "at": time.time()})
            notes = notes[-self.max_entries :]
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(json.dumps(notes, indent=1), encoding="utf-8")
            partial.replace(self.path)


class MemoryReadTool(Tool):
    name = "memory_read"
    description = "Read your notes: all of them, or the one with the given key."

    @property
    def parameters(self) -> JsonDict:
        return {
            "type": "object",
            "properties": {"key": {"type": "string", "description": "Only this note."}},
            "additionalProperties": False,
        }

    internal = True

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def risk(self, arguments: JsonDict) -> Risk:
        return Risk.READ_ONLY

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        notes = self._store.entries()
        key = arguments.get("key")
        if key is not None:
            notes = [n for n in notes if n.get("key") == key]
            if not notes:
                return ToolOutcome(f"no note with key {key!r}")
        return ToolOutcome(
            json.dumps({n["key"]: n["value"] for n in notes}, indent=1) if notes else "no notes yet"
        )


class MemoryWriteTool(Tool):
    name = "memory_write"
    description = (
        "Save a note under a key (replacing an older one). Keys starting with 'lesson' are shown to you "
        "at the start of later runs."
    )

    @property
    def parameters(self) -> JsonDict:
        return {
            "type": "object",
            "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
            "required": ["key", "value"],
            "additionalProperties": False,
        }

    internal = True

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def risk(self, arguments: JsonDict) -> Risk:
        return Risk.IDEMPOTENT

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        key, value = str(arguments["key"]), str(arguments["value"])
        if len(value) > MAX_VALUE_CHARS:
            raise ToolError(f"a note holds at most {MAX_VALUE_CHARS} characters, this one has {len(value)}")
        self._store.write(key, value)
        return ToolOutcome(f"saved note {key!r}")
