"""The run file: the one JSON document that tells a runtime process what to run.

The operator writes it (and `agency run` builds it from YAML files) before the process starts; the path
arrives as `AGENCY_RUN_FILE`. It holds the resolved Agent spec, the governing policy's spec, the input and
why the run exists, never secrets: credentials come only through the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

from agency_runtime.api.agent import AgentSpec
from agency_runtime.api.meta import ApiModel
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.api.run import Trigger


class RunFileError(ValueError):
    """The run file is missing or does not describe a run; the message names the file and the problem."""


class RunFile(ApiModel):
    """What one run does: the agent as resolved at run creation, its policy, its input and its origin."""

    agent: AgentSpec
    """The Agent's spec when the run was created (later edits to the Agent do not change a running run)."""

    policy: AgentPolicySpec | None = None
    """The governing policy's spec; `None` only for a local `agency run` without `--policy`."""

    input: Annotated[str, Field(max_length=1_048_576)] = ""
    """The task, given to the model as the first user message."""

    trigger: Trigger | None = None
    """Why the run exists (manual, schedule, signal, delegation)."""

    parent_run: str | None = None
    """Name of the run that delegated to this one, if any."""

    def to_json(self) -> str:
        """The file's text: camelCase keys, unset fields left out."""
        return json.dumps(self.to_k8s(), indent=2, sort_keys=True)


def load_run_file(path: Path) -> RunFile:
    """Read and validate a run file; RunFileError says which file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RunFileError(f"cannot read the run file {path}: {err.strerror or err}") from None
    try:
        return RunFile.model_validate_json(text)
    except ValidationError as err:
        raise RunFileError(f"the run file {path} does not describe a run:\n{err}") from None


def write_run_file(run: RunFile, path: Path) -> None:
    """Write a run file atomically (a reader never sees half of it)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(run.to_json(), encoding="utf-8")
    partial.replace(path)
