"""What the scripted LLM server answers: turns, scripts, and their JSON/YAML form.

A test scripts a *conversation* as a list of turns, consumed one per chat-completion request:

- ``reply(...)``: an assistant message with text and/or tool calls and the usage numbers to report;
- ``error(429, retry_after=1)``: an HTTP error with an OpenAI-style body (and ``Retry-After``);
- ``delay(2.0, turn)``: the same turn, answered after a pause (for timeouts and deadlines);
- in-process only, a callable ``(request_json) -> Reply | Error`` that decides from what the model was sent.

The same turns can be written as JSON or YAML, so a test can script a server running in another process
(``POST /_script``) and ``make demo`` can start one from a file::

    conversations:
      triage:                       # the model name the client sends (litellm: model="openai/triage")
        repeat_last: false          # or loop: true to start over when the turns run out
        turns:
          - tool_calls: [{name: get_pod, arguments: {name: web-1}}]
            usage: [100, 20]        # or {prompt_tokens: 100, completion_tokens: 20}
          - error: 429
            retry_after: 1
          - content: "The pod is healthy."
            delay: 0.5

A tool call's ``arguments`` is a mapping (serialized to JSON) or a string sent verbatim, so a test can send
malformed JSON on purpose. Unknown keys are refused, so a typo fails the test instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asks for; a string ``arguments`` is sent exactly as written."""

    name: str
    arguments: Mapping[str, Any] | str = dataclasses.field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        """The ``function.arguments`` string on the wire (OpenAI sends arguments as a JSON string)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"))


@dataclass(frozen=True)
class Usage:
    """Token counts the server reports; the total is their sum, as with OpenAI."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Reply:
    """An assistant message. Without ``usage`` the server estimates it from the text lengths."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    delay: float = 0.0

    @property
    def effective_finish_reason(self) -> str:
        """``tool_calls`` when the reply asks for tools, else ``stop``, unless the script says otherwise."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class Error:
    """An HTTP error answer; ``retry_after`` (seconds, may be fractional) sets the Retry-After headers."""

    status: int
    message: str | None = None
    type: str | None = None
    code: str | None = None
    retry_after: float | None = None
    delay: float = 0.0


Responder = Callable[[JsonDict], Reply | Error]
"""An in-process turn: gets the request JSON, returns the turn to answer with."""

Turn = Reply | Error | Responder


@dataclass(frozen=True)
class Script:
    """The turns of one conversation and what happens when they run out.

    By default an exhausted script answers a 500 naming the conversation, so a test that under-scripts
    fails loudly. ``repeat_last`` answers the last turn forever; ``loop`` starts over from the first turn
    (for a demo agent that runs the same conversation on a schedule).
    """

    turns: tuple[Turn, ...]
    repeat_last: bool = False
    loop: bool = False

    def __post_init__(self) -> None:
        if self.repeat_last and self.loop:
            raise ValueError("a script can repeat its last turn or loop, not both")
        if (self.repeat_last or self.loop) and not self.turns:
            raise ValueError("a script that repeats or loops needs at least one turn")


# --- builders -------------------------------------------------------------------------------------------


def call(name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None) -> ToolCall:
    """A tool call; pass a string as ``arguments`` to send it verbatim (e.g. malformed JSON)."""
    return ToolCall(name=name, arguments={} if arguments is None else arguments, id=id)


def reply(
    content: str | None = None,
    *,
    tool_calls: Sequence[ToolCall] = (),
    usage: tuple[int, int] | Usage | None = None,
    finish_reason: str | None = None,
    delay: float = 0.0,
) -> Reply:
    """An assistant reply; ``usage=(prompt_tokens, completion_tokens)``."""
    return Reply(
        content=content,
        tool_calls=tuple(tool_calls),
        usage=_usage(usage),
        finish_reason=finish_reason,
        delay=delay,
    )


def error(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    type: str | None = None,
    code: str | None = None,
    delay: float = 0.0,
) -> Error:
    """An HTTP error turn, e.g. ``error(429, retry_after=1)`` or ``error(500)``."""
    if not 400 <= status <= 599:
        raise ValueError(f"an error turn needs a 4xx or 5xx status, got {status}")
    return Error(status=status, message=message, type=type, code=code, retry_after=retry_after, delay=delay)


def delay(seconds: float, turn: Reply | Error) -> Reply | Error:
    """The same turn, answered after ``seconds`` (the server waits before sending anything)."""
    return dataclasses.replace(turn, delay=seconds)


def script(turns: Sequence[Turn], *, repeat_last: bool = False, loop: bool = False) -> Script:
    """A conversation's script from a list of turns."""
    return Script(turns=tuple(turns), repeat_last=repeat_last, loop=loop)


def _usage(value: tuple[int, int] | Sequence[int] | Mapping[str, Any] | Usage | None) -> Usage | None:
    if value is None or isinstance(value, Usage):
        return value
    if isinstance(value, Mapping):
        _refuse_unknown("usage", value, {"prompt_tokens", "completion_tokens"})
        return Usage(int(value["prompt_tokens"]), int(value["completion_tokens"]))
    prompt, completion = value
    return Usage(int(prompt), int(completion))


# --- JSON / YAML form -----------------------------------------------------------------------------------

_REPLY_KEYS = {"content", "tool_calls", "usage", "finish_reason", "delay"}
_ERROR_KEYS = {"error", "message", "type", "code", "retry_after", "delay"}
_CALL_KEYS = {"name", "arguments", "id"}
_SCRIPT_KEYS = {"turns", "repeat_last", "loop"}


def _refuse_unknown(what: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(
            f"unknown key(s) in {what}: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def turn_from_json(data: Mapping[str, Any]) -> Reply | Error:
    """A turn from its JSON form: an object with ``error`` (the status) is an error, otherwise a reply."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a turn must be an object, got {type(data).__name__}")
    if "error" in data:
        _refuse_unknown("an error turn", data, _ERROR_KEYS)
        retry_after = data.get("retry_after")
        return error(
            int(data["error"]),
            data.get("message"),
            retry_after=None if retry_after is None else float(retry_after),
            type=data.get("type"),
            code=data.get("code"),
            delay=float(data.get("delay", 0.0)),
        )
    _refuse_unknown("a reply turn", data, _REPLY_KEYS)
    calls = []
    for raw in data.get("tool_calls") or ():
        _refuse_unknown("a tool call", raw, _CALL_KEYS)
        calls.append(call(str(raw["name"]), raw.get("arguments"), id=raw.get("id")))
    return reply(
        data.get("content"),
        tool_calls=calls,
        usage=_usage(data.get("usage")),
        finish_reason=data.get("finish_reason"),
        delay=float(data.get("delay", 0.0)),
    )


def turn_to_json(turn: Turn) -> JsonDict:
    """The JSON form of a turn; callables live only in-process and are refused."""
    if isinstance(turn, Error):
        out: JsonDict = {"error": turn.status}
        for key in ("message", "type", "code", "retry_after"):
            if getattr(turn, key) is not None:
                out[key] = getattr(turn, key)
    elif isinstance(turn, Reply):
        out = {}
        if turn.content is not None:
            out["content"] = turn.content
        if turn.tool_calls:
            out["tool_calls"] = [_call_to_json(c) for c in turn.tool_calls]
        if turn.usage is not None:
            out["usage"] = {
                "prompt_tokens": turn.usage.prompt_tokens,
                "completion_tokens": turn.usage.completion_tokens,
            }
        if turn.finish_reason is not None:
            out["finish_reason"] = turn.finish_reason
    else:
        raise TypeError("a callable turn cannot leave this process; script it in-process or as data")
    if turn.delay:
        out["delay"] = turn.delay
    return out


def _call_to_json(tool_call: ToolCall) -> JsonDict:
    arguments = tool_call.arguments if isinstance(tool_call.arguments, str) else dict(tool_call.arguments)
    out: JsonDict = {"name": tool_call.name, "arguments": arguments}
    if tool_call.id is not None:
        out["id"] = tool_call.id
    return out


def script_from_json(data: Mapping[str, Any] | Sequence[Any]) -> Script:
    """A script from ``{"turns": [...], "repeat_last": bool, "loop": bool}`` or a bare list of turns."""
    if isinstance(data, Mapping):
        _refuse_unknown("a script", data, _SCRIPT_KEYS)
        return script(
            [turn_from_json(t) for t in data.get("turns") or ()],
            repeat_last=bool(data.get("repeat_last", False)),
            loop=bool(data.get("loop", False)),
        )
    return script([turn_from_json(t) for t in data])


def script_to_json(value: Script) -> JsonDict:
    """The JSON form of a script (for ``POST /_script``)."""
    out: JsonDict = {"turns": [turn_to_json(t) for t in value.turns]}
    if value.repeat_last:
        out["repeat_last"] = True
    if value.loop:
        out["loop"] = True
    return out


def scripts_from_json(data: Mapping[str, Any]) -> dict[str, Script]:
    """Conversations from ``{"conversations": {name: script}}``, the form of script files."""
    _refuse_unknown("a script file", data, {"conversations"})
    conversations = data.get("conversations") or {}
    if not isinstance(conversations, Mapping):
        raise ValueError("'conversations' must map conversation names to scripts")
    return {str(name): script_from_json(value) for name, value in conversations.items()}


def load_scripts(path: Path) -> dict[str, Script]:
    """Conversations from a ``.json`` or ``.yaml``/``.yml`` file."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a script file holds an object with 'conversations'")
    return scripts_from_json(data)
