"""What a tool is to the loop: a definition the model sees, a risk class, and a way to invoke it."""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agency_runtime.api.common import Risk
from agency_runtime.contract import Budget

JsonDict = dict[str, Any]

CHILD_USAGE = "childUsage"
"""The key in `ToolOutcome.data` of usage made on the run's behalf by another run (`inputTokens`,
`outputTokens`, `costUSD`): the loop counts it against the run's budget."""


@dataclass(frozen=True)
class ToolContext:
    """What a call gets besides its arguments.

    `idempotency_key` is the same on every retry of one call (also across processes), so an idempotent
    tool can pass it on and the other side can drop duplicates.
    """

    run_id: str
    call_key: str
    idempotency_key: str
    deadline: float | None = None
    remaining: Budget | None = None
    """What is left of the run's budget when the call starts (a delegation carves its child's out of it)."""


@dataclass(frozen=True)
class ToolOutcome:
    """The result the model reads (`content`), whether it is an error, and structured data to journal."""

    content: str
    is_error: bool = False
    data: JsonDict = field(default_factory=dict)
    final: bool = False
    """True when the tool ends the run (`finish`): `content` is the run's result."""

    def to_json(self) -> JsonDict:
        return {"content": self.content, "isError": self.is_error, "data": self.data, "final": self.final}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ToolOutcome:
        return cls(
            content=str(raw.get("content", "")),
            is_error=bool(raw.get("isError", False)),
            data=dict(raw.get("data") or {}),
            final=bool(raw.get("final", False)),
        )

    @classmethod
    def error(cls, message: str, **data: Any) -> ToolOutcome:
        return cls(content=message, is_error=True, data=dict(data))


class ToolError(Exception):
    """A call failed in a way the model should hear about (bad arguments, refused host, HTTP failure)."""


class Tool(abc.ABC):
    """One tool. `internal` tools change only the run's own state (plan, memory, finish) and skip the
    policy gate; every other tool is gated by the policy."""

    name: str
    description: str
    internal: bool = False
    reversible: bool = False
    """True when `compensation` can always say how to undo a call (policies may require it to act)."""

    @property
    @abc.abstractmethod
    def parameters(self) -> JsonDict:
        """JSON Schema of the arguments."""

    @abc.abstractmethod
    def risk(self, arguments: JsonDict) -> Risk:
        """The risk class of this call (it may depend on the arguments, e.g. the HTTP method)."""

    @abc.abstractmethod
    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        """Make the call."""

    def compensation(self, arguments: JsonDict, outcome: ToolOutcome) -> JsonDict | None:
        """How to undo a finished call (`{"tool": name, "arguments": {...}}`), recorded for rollback and run
        by it when a guardrail fails; None if unknown."""
        return None

    def can_undo(self, arguments: JsonDict) -> bool:
        """Whether this call will have a compensation (a policy may require one to act without approval)."""
        return self.reversible

    def schema(self) -> JsonDict:
        """The OpenAI-style function definition the model is given."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def parse_arguments(raw: str, parameters: JsonDict) -> JsonDict:
    """The call's arguments as an object, or ToolError saying exactly what is wrong (shown to the model)."""
    text = raw.strip() or "{}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ToolError(
            f"the arguments are not valid JSON ({err.msg} at character {err.pos}); "
            "send a JSON object matching the tool's parameters"
        ) from None
    if not isinstance(value, dict):
        raise ToolError(f"the arguments must be a JSON object, got {type(value).__name__}")
    missing = [name for name in parameters.get("required", ()) if name not in value]
    if missing:
        raise ToolError(f"missing required argument(s): {', '.join(missing)}")
    properties = parameters.get("properties")
    if parameters.get("additionalProperties") is False and isinstance(properties, dict):
        extra = sorted(set(value) - set(properties))
        if extra:
            raise ToolError(
                f"unknown argument(s): {', '.join(extra)}; allowed: {', '.join(sorted(properties))}"
            )
    return value
