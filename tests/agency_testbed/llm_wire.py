"""The OpenAI chat-completions wire format the scripted server speaks, as pure functions.

Kept apart from the HTTP server so the shapes (ids, ``finish_reason``, usage, stream chunks, error bodies)
can be read in one place and compared with what OpenAI sends: litellm parses these exactly as it parses a
real provider's answers, which is the point of the scripted server.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agency_testbed.llm_script import JsonDict, Reply, Usage

SYSTEM_FINGERPRINT = "fp_agency_testbed"
STREAM_PIECE_CHARS = 8
"""Streamed text and tool arguments are cut into pieces this long, so clients must reassemble them."""


@dataclass(frozen=True)
class Envelope:
    """What a reply is wrapped in on the wire, chosen by the server per response."""

    response_id: str
    model: str
    created: int
    call_ids: Sequence[str]
    """One id per tool call of the reply, in order."""
    usage: Usage


def estimate_tokens(text: str) -> int:
    """About four characters per token, at least one: deterministic and growing with the text."""
    return max(1, math.ceil(len(text) / 4))


def estimate_usage(request: JsonDict, answer: Reply) -> Usage:
    """Usage for a reply that does not script it: from the JSON of the messages (and tools) sent,
    and from the reply's text and tool calls, so a longer conversation reports more prompt tokens."""
    prompt = json.dumps(request.get("messages", []), separators=(",", ":"), sort_keys=True)
    if request.get("tools"):
        prompt += json.dumps(request["tools"], separators=(",", ":"), sort_keys=True)
    completion = (answer.content or "") + "".join(c.name + c.arguments_text() for c in answer.tool_calls)
    return Usage(estimate_tokens(prompt), estimate_tokens(completion))


def usage_json(usage: Usage) -> JsonDict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_body(answer: Reply, envelope: Envelope) -> JsonDict:
    """A non-streamed ``chat.completion`` object."""
    message: JsonDict = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": tool_call.name, "arguments": tool_call.arguments_text()},
            }
            for call_id, tool_call in zip(envelope.call_ids, answer.tool_calls, strict=True)
        ]
    return {
        "id": envelope.response_id,
        "object": "chat.completion",
        "created": envelope.created,
        "model": envelope.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.effective_finish_reason,
            }
        ],
        "usage": usage_json(envelope.usage),
    }


def _pieces(text: str) -> list[str]:
    return [text[i : i + STREAM_PIECE_CHARS] for i in range(0, len(text), STREAM_PIECE_CHARS)]


def stream_chunks(answer: Reply, envelope: Envelope, *, include_usage: bool) -> list[JsonDict]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order, without the ``[DONE]`` line.

    As with OpenAI: a first chunk with the role, text in pieces, each tool call opened with its id and
    name and then its arguments in pieces, a chunk with ``finish_reason``, and with
    ``stream_options.include_usage`` a last chunk with no choices and the usage (``usage: null`` before).
    """

    def chunk(delta: JsonDict, finish_reason: str | None = None) -> JsonDict:
        out: JsonDict = {
            "id": envelope.response_id,
            "object": "chat.completion.chunk",
            "created": envelope.created,
            "model": envelope.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            out["usage"] = None
        return out

    chunks = [
        chunk({"role": "assistant", "content": "" if answer.content is not None else None, "refusal": None})
    ]
    chunks.extend(chunk({"content": piece}) for piece in _pieces(answer.content or ""))
    for index, (call_id, tool_call) in enumerate(zip(envelope.call_ids, answer.tool_calls, strict=True)):
        opening: dict[str, Any] = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": tool_call.name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [opening]}))
        chunks.extend(
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in _pieces(tool_call.arguments_text())
        )
    chunks.append(chunk({}, answer.effective_finish_reason))
    if include_usage:
        chunks.append(
            {
                "id": envelope.response_id,
                "object": "chat.completion.chunk",
                "created": envelope.created,
                "model": envelope.model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [],
                "usage": usage_json(envelope.usage),
            }
        )
    return chunks


def sse_event(data: JsonDict | str) -> bytes:
    """One server-sent event line pair, ``data: ...\\n\\n``."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}


def error_body(status: int, message: str, *, type: str | None = None, code: str | None = None) -> JsonDict:
    """An OpenAI-style error object; type and code default to what OpenAI sends for that status."""
    default_type, default_code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {
        "error": {
            "message": message,
            "type": type or default_type,
            "param": None,
            "code": code or default_code,
        }
    }


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (the standard) and ``retry-after-ms`` (which the OpenAI SDK prefers),
    so a fractional wait keeps retry tests fast while standard clients still see a valid header."""
    return {"Retry-After": str(max(0, math.ceil(seconds))), "retry-after-ms": str(round(seconds * 1000))}
