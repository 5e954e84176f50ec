"""Status reporters: where a run's outcome goes. Now stdout and a file; later a PATCH of AgentRun status."""

from __future__ import annotations

import abc
import json
import sys
from pathlib import Path
from typing import TextIO

from agency_runtime.loop import Progress, RunResult

RESULT_FILE = "AGENCY_RESULT_FILE"


class StatusReporter(abc.ABC):
    """Publishes a run's outcome (and, later, its progress)."""

    @abc.abstractmethod
    def report(self, result: RunResult) -> None:
        """Publish the final (or waiting) result."""

    def progress(self, progress: Progress) -> None:  # noqa: B027 - most reporters only publish the end
        """Publish where the run is after a step (a status PATCH will; stdout and files do not)."""


class StreamReporter(StatusReporter):
    """The result as one JSON line on a stream (stdout by default): the last line the process prints."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def report(self, result: RunResult) -> None:
        stream = self.stream or sys.stdout
        stream.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
        stream.flush()


class FileReporter(StatusReporter):
    """The result as a JSON file, written atomically (for the `local` executor and tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def report(self, result: RunResult) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True), encoding="utf-8")
        partial.replace(self.path)


class Reporters(StatusReporter):
    def __init__(self, *reporters: StatusReporter) -> None:
        self.reporters = reporters

    def report(self, result: RunResult) -> None:
        for reporter in self.reporters:
            reporter.report(result)

    def progress(self, progress: Progress) -> None:
        for reporter in self.reporters:
            reporter.progress(progress)
