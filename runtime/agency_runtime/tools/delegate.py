"""Delegation: a run asks another Agent by creating a child AgentRun and waiting for its result.

- The child is created in the run's namespace with the run's own token (RBAC decides: the run needs
  `create` and `get` on `agentruns`, e.g. through a ClusterRole its policy grants), with
  `spec.parentRunRef` = this run, `spec.trigger.type: Delegation`, an ownerReference to this run (deleting
  the parent deletes its children) and the annotation `agency.dev/traceparent`: the span of this tool call,
  so the child's spans sit under it in the parent's trace.
- Its budget is carved out of what is left of the parent's: each limit is the lower of what the model
  asked for and what the parent has left, never more; when nothing is left the call is refused. Steps
  are not carved (a child's steps are its own, its policy limits them).
- The child's name is derived from this run and the call's idempotency key, so a retry (also by a new
  process after a crash, which replays the journaled intent with the same key) finds the same child
  (409 AlreadyExists: adopt it) instead of creating a second. That makes the call idempotent.
- The run's Role lets it read only its own children, and the operator adds each child when it sees it,
  so a 403 on reading a child that was just created is retried for a while (`GRANT_WAIT_SECONDS`).
- Then the tool polls the child (backoff up to `MAX_POLL_SECONDS`) until it finishes or the parent's wall
  time is up. The child's usage is returned as `childUsage`, which the loop adds to the parent's usage when
  the call finishes (not reserved up front: the carve-out already keeps the child within what is left).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from typing import Any

from agency_runtime.api.common import Risk
from agency_runtime.api.meta import API_VERSION
from agency_runtime.contract import Budget
from agency_runtime.kube import AGENTRUNS, KubeApiError, KubeClient, RunObject, resource_path
from agency_runtime.tools.base import CHILD_USAGE, JsonDict, Tool, ToolContext, ToolError, ToolOutcome
from agency_runtime.tracing import current_traceparent

TRACEPARENT_ANNOTATION = "agency.dev/traceparent"
PARENT_LABEL = "agency.dev/parent-run"
FINISHED = frozenset({"Succeeded", "Failed", "BudgetExceeded", "Cancelled"})
FIRST_POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 5.0
WAIT_WITHOUT_DEADLINE = 3600.0
"""How long to wait for a child when the parent has no wall-time limit."""
GRANT_WAIT_SECONDS = 60.0
"""How long a refused read of a just-created child is retried: the operator adds get on each child to its
parent's Role when it sees the child."""
MIN_CHILD_TOKENS = 100
"""A child with fewer tokens than this could not even read its task: refuse instead."""
MAX_RESULT_CHARS = 16_000


def child_name(parent: str, idempotency_key: str) -> str:
    """The same child name for every retry of one call: `<parent prefix>-d-<hash of the call>`."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:10]
    prefix = re.sub(r"-+$", "", parent[:40])
    return f"{prefix}-d-{digest}"


def carve(remaining: Budget | None, asked_tokens: int | None, asked_cost: float | None) -> Budget:
    """The child's limits: for tokens, cost and wall time the lower of what was asked and what the parent
    has left (`remaining`, None: unlimited)."""
    left = remaining or Budget()

    def low(asked: float | None, have: float | None) -> float | None:
        values = [v for v in (asked, have) if v is not None]
        return min(values) if values else None

    tokens = low(asked_tokens, left.max_tokens)
    return Budget(
        max_tokens=None if tokens is None else int(tokens),
        max_cost_usd=low(asked_cost, left.max_cost_usd),
        max_wall_seconds=left.max_wall_seconds,
    )


def exhausted(budget: Budget) -> str | None:
    """Why a carved budget leaves the child nothing to work with, or None."""
    if budget.max_tokens is not None and budget.max_tokens < MIN_CHILD_TOKENS:
        return f"{budget.max_tokens} tokens are left (a child needs at least {MIN_CHILD_TOKENS})"
    if budget.max_cost_usd is not None and budget.max_cost_usd <= 0:
        return "no cost budget is left"
    if budget.max_wall_seconds is not None and budget.max_wall_seconds < 1:
        return "no wall time is left"
    return None


def budget_spec(budget: Budget) -> JsonDict:
    """The child's `spec.budget` (costs rounded down so the child never gets more than was left)."""
    out: JsonDict = {}
    if budget.max_tokens is not None:
        out["maxTokens"] = budget.max_tokens
    if budget.max_cost_usd is not None:
        out["maxCostUSD"] = math.floor(budget.max_cost_usd * 1e6) / 1e6
    if budget.max_wall_seconds is not None:
        out["maxWallSeconds"] = budget.max_wall_seconds
    return out


def child_run(
    parent: RunObject, name: str, agent: str, task: str, budget: Budget, traceparent: str | None
) -> JsonDict:
    """The child AgentRun."""
    metadata: JsonDict = {
        "name": name,
        "namespace": parent.namespace,
        "labels": {PARENT_LABEL: parent.name},
        "ownerReferences": [parent.owner_reference()],
    }
    if traceparent:
        metadata["annotations"] = {TRACEPARENT_ANNOTATION: traceparent}
    spec: JsonDict = {
        "agentRef": {"name": agent},
        "input": task,
        "parentRunRef": {"name": parent.name},
        "trigger": {"type": "Delegation"},
    }
    limits = budget_spec(budget)
    if limits:
        spec["budget"] = limits
    return {"apiVersion": API_VERSION, "kind": "AgentRun", "metadata": metadata, "spec": spec}


def usage_of(status: JsonDict) -> JsonDict:
    usage = status.get("usage") or {}
    return {
        "inputTokens": int(usage.get("inputTokens", 0)),
        "outputTokens": int(usage.get("outputTokens", 0)),
        "costUSD": float(usage.get("costUSD", 0.0)),
    }


class DelegateTool(Tool):
    """Ask another Agent: a child AgentRun with a carved-out budget, waited for until it finishes.

    With `agent` set (an Agent tool declared with `agentRef`) the model passes only the input; the
    built-in `delegate` takes the agent's name too."""

    def __init__(
        self,
        name: str,
        description: str | None,
        client: KubeClient,
        parent: RunObject,
        *,
        agent: str | None = None,
        risk: Risk | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.description = description or (
            f"Ask the agent {agent} to do a task and wait for its answer."
            if agent
            else "Ask another agent in this namespace (find one with find_agents) to do a task and wait "
            "for its answer. Its budget comes out of what is left of yours."
        )
        self.client = client
        self.parent = parent
        self.agent = agent
        self._risk = risk or Risk.IDEMPOTENT
        self.clock = clock
        self.sleep = sleep
        properties: JsonDict = {
            "input": {
                "type": "string",
                "description": "The task for the agent, complete and self-contained.",
            },
            "maxTokens": {
                "type": "integer",
                "minimum": 1,
                "description": "Optional: at most this many tokens.",
            },
            "maxCostUSD": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "Optional: at most this cost.",
            },
        }
        if agent is None:
            properties = {"agent": {"type": "string", "description": "The agent's name."}, **properties}
        self._parameters: JsonDict = {
            "type": "object",
            "properties": properties,
            "required": ["input"] if agent else ["agent", "input"],
            "additionalProperties": False,
        }

    @property
    def parameters(self) -> JsonDict:
        return self._parameters

    def risk(self, arguments: JsonDict) -> Risk:
        return self._risk

    def _number(self, arguments: JsonDict, name: str) -> Any:
        value = arguments.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ToolError(f"{name} must be a positive number")
        return value

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        agent = self.agent or str(arguments.get("agent") or "")
        if not agent:
            raise ToolError("name the agent to delegate to (agent)")
        asked_tokens = self._number(arguments, "maxTokens")
        budget = carve(
            context.remaining,
            None if asked_tokens is None else int(asked_tokens),
            self._number(arguments, "maxCostUSD"),
        )
        name = child_name(self.parent.name, context.idempotency_key)
        path = resource_path(API_VERSION, AGENTRUNS, self.parent.namespace, name)
        try:
            child = self._existing(path)
            if child is None:
                empty = exhausted(budget)
                if empty is not None:
                    return ToolOutcome.error(
                        f"refused: nothing is left of this run's budget to give agent {agent}: {empty}. "
                        "Finish with what you have."
                    )
                body = child_run(
                    self.parent,
                    name,
                    agent,
                    str(arguments.get("input") or ""),
                    budget,
                    current_traceparent(),
                )
                child = self._create(body, path)
        except KubeApiError as err:
            return ToolOutcome.error(
                f"error: delegating to agent {agent} failed: HTTP {err.status} {err.reason}: {err.message}"
                + (
                    " (this run's RBAC must allow create and get on agentruns.agency.dev)"
                    if err.status == 403
                    else ""
                ),
                status=err.status,
                child=name,
            )
        return self._wait(agent, name, path, child, context)

    def _existing(self, path: str) -> JsonDict | None:
        try:
            found = self.client.get(path)
        except KubeApiError as err:
            if err.not_found or err.status == 403:  # 403: the operator grants get on a child once it exists
                return None
            raise
        parent = ((found.get("spec") or {}).get("parentRunRef") or {}).get("name")
        if parent != self.parent.name:
            raise KubeApiError(409, "Conflict", f"AgentRun {path} exists but was not delegated by this run")
        return found

    def _create(self, body: JsonDict, path: str) -> JsonDict:
        collection = resource_path(API_VERSION, AGENTRUNS, self.parent.namespace)
        try:
            return self.client.create(collection, body)
        except KubeApiError as err:
            if not err.already_exists:
                raise
        adopted = self._existing(path)  # an earlier try (or process) made it first
        return adopted if adopted is not None else {"metadata": {"name": body["metadata"]["name"]}}

    def _wait(self, agent: str, name: str, path: str, child: JsonDict, context: ToolContext) -> ToolOutcome:
        deadline = context.deadline or self.clock() + WAIT_WITHOUT_DEADLINE
        pause = FIRST_POLL_SECONDS
        refused_since: float | None = None
        while True:
            status = child.get("status") or {}
            phase = status.get("phase")
            if phase in FINISHED:
                return self._finished(agent, name, child)
            if self.clock() + pause > deadline:
                return ToolOutcome.error(
                    f"error: agent {agent} (AgentRun {name}) has not finished ({phase or 'Pending'}) within "
                    "this run's wall time",
                    child=name,
                    **{CHILD_USAGE: usage_of(status)},
                )
            self.sleep(pause)
            pause = min(MAX_POLL_SECONDS, pause * 2)
            try:
                child = self.client.get(path)
                refused_since = None
            except KubeApiError as err:
                if err.status in {0, 429} or err.status >= 500:
                    continue  # the API server will answer again; the deadline bounds the wait
                if err.status == 403:
                    refused_since = refused_since or self.clock()
                    if self.clock() - refused_since < GRANT_WAIT_SECONDS:
                        continue  # the operator grants the parent get on its child once it sees the child
                return ToolOutcome.error(
                    f"error: cannot read AgentRun {name} of agent {agent}: HTTP {err.status} {err.reason}: "
                    f"{err.message}",
                    status=err.status,
                    child=name,
                )

    def _finished(self, agent: str, name: str, child: JsonDict) -> ToolOutcome:
        status = child.get("status") or {}
        phase = str(status.get("phase"))
        result = str(status.get("result") or "")[:MAX_RESULT_CHARS]
        used = usage_of(status)
        data = {"child": name, "phase": phase, CHILD_USAGE: used}
        if phase == "Succeeded":
            return ToolOutcome(result or f"(agent {agent} answered nothing)", data=data)
        why = next(
            (
                str(c.get("message") or c.get("reason"))
                for c in status.get("conditions") or ()
                if c.get("type") in {"Succeeded", "Ready", "Finished"} and c.get("status") == "False"
            ),
            "",
        )
        return ToolOutcome.error(
            f"agent {agent} (AgentRun {name}) ended {phase}"
            + (f": {why}" if why else "")
            + (f"\nits last answer: {result}" if result else ""),
            **data,
        )
