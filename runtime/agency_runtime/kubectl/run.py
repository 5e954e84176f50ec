"""`kubectl agency run AGENT --input TEXT`: create an AgentRun and follow it to its end.

Following is polling the run (twice a second) rather than a watch: one GET per poll survives API server
restarts and proxies without reconnect logic, and a person watching a progress line cannot tell.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from agency_runtime.kubectl.client import GROUP_VERSION, Api, kind_path, run_path
from agency_runtime.kubectl.errors import (
    EXIT_RUN_FAILED,
    EXIT_TIMEOUT,
    EXIT_WAITING,
    Forbidden,
    NotFound,
    PluginError,
)
from agency_runtime.kubectl.progress import FINISHED, WAITING, ProgressLine, phase_of, progress_line

JsonDict = dict[str, Any]
MAX_NAME = 63
GENERATED_SUFFIX = 5  # the API server appends five characters to generateName


def build_run(
    agent: str,
    text: str,
    *,
    name: str | None = None,
    max_tokens: int | None = None,
    max_cost_usd: float | None = None,
    max_steps: int | None = None,
) -> JsonDict:
    """The AgentRun to create: named `name`, or generated from the agent's name."""
    metadata: JsonDict = (
        {"name": name} if name else {"generateName": f"{agent[: MAX_NAME - GENERATED_SUFFIX - 1]}-"}
    )
    spec: JsonDict = {"agentRef": {"name": agent}, "input": text}
    budget = {
        key: value
        for key, value in (("maxTokens", max_tokens), ("maxCostUSD", max_cost_usd), ("maxSteps", max_steps))
        if value is not None
    }
    if budget:
        spec["budget"] = budget
    return {"apiVersion": GROUP_VERSION, "kind": "AgentRun", "metadata": metadata, "spec": spec}


def create(api: Api, namespace: str, body: JsonDict) -> JsonDict:
    """Create the run, after checking its Agent exists (a run of a missing agent would only fail later)."""
    agent = body["spec"]["agentRef"]["name"]
    try:
        api.get(kind_path("agents", namespace, agent), what=f"Agent {agent}", namespace=namespace)
    except Forbidden:
        pass  # not allowed to read Agents: the operator will say whether it exists
    except NotFound as err:
        raise NotFound(f"{err} (kubectl get agents -n {namespace} lists the agents there)") from err
    return api.call(
        "POST", run_path(namespace), json=body, what="an AgentRun", namespace=namespace, action="create"
    )


def follow(
    api: Api,
    namespace: str,
    name: str,
    progress: ProgressLine,
    *,
    timeout: float | None = None,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
) -> JsonDict:
    """Show the run's progress until it finishes or waits for approval; the run as last read.

    Raises PluginError with EXIT_TIMEOUT when `timeout` seconds pass first.
    """
    deadline = None if timeout is None else clock() + timeout
    while True:
        run = api.get(run_path(namespace, name), what=f"AgentRun {name}", namespace=namespace)
        progress.show(progress_line(run))
        if phase_of(run) in FINISHED or phase_of(run) == WAITING:
            progress.end()
            return run
        if deadline is not None and clock() >= deadline:
            progress.end()
            stopped = PluginError(
                f"AgentRun {name} is still {phase_of(run)} after {timeout:g}s; it goes on running "
                f"(kubectl get agentrun {name} -n {namespace})"
            )
            stopped.exit_code = EXIT_TIMEOUT
            raise stopped
        time.sleep(interval)


def exit_code(run: Mapping[str, Any]) -> int:
    phase = phase_of(run)
    if phase == "Succeeded":
        return 0
    return EXIT_WAITING if phase == WAITING else EXIT_RUN_FAILED
