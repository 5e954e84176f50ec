"""Turn an HTTP request into a `Signal` with the CloudEvents SDK, or say precisely why it cannot be one.

Both HTTP content modes of CloudEvents 1.0 are accepted:

- binary: the attributes in `ce-*` headers (`ce-specversion: 1.0`, `ce-id`, `ce-source`, `ce-type`, ...),
  the data in the body with its own `Content-Type` (JSON, or text);
- structured: the whole event as JSON in the body with `Content-Type: application/cloudevents+json`.

Batches (`application/cloudevents-batch+json`) and other event formats are refused with 415.

The SDK fills in a missing `id` and `time` with generated values; an event without an id cannot be
deduplicated, so the required attributes are checked here before the SDK sees the event, and a generated
`time` is not passed on. A `time` that is not RFC 3339 is refused naming the attribute (the SDK's own
error would not), and so is JSON nested deeper than `MAX_DEPTH` (Python's parser would raise
RecursionError a little deeper, and CEL and the input template recurse over the data too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from agency_operator.triggers.signals.event import Signal

#: A W3C trace parent (version 00), not all-zero ids; anything else is ignored rather than refused.
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")

STRUCTURED_JSON = "application/cloudevents+json"
BATCH_JSON = "application/cloudevents-batch+json"

#: What the AgentRun's spec.trigger.signal can hold; longer attributes are refused at the door.
ATTRIBUTE_LIMITS = {"id": 256, "type": 256, "source": 1024, "subject": 1024}
REQUIRED = ("specversion", "id", "source", "type")

_JSON_TYPE = re.compile(r"^(application|text)/([a-zA-Z0-9\-.]+\+)?json$")

#: Deepest nesting of objects and lists accepted in an event: parsers, CEL and templates recurse per level.
MAX_DEPTH = 64
_TOO_DEEP = f"the event's JSON is nested too deeply: at most {MAX_DEPTH} levels of objects and lists"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class SignalRejected(Exception):
    """The request is not an acceptable CloudEvent: the HTTP status, a metric outcome and a message that
    tells the sender what to fix."""

    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.message = message


def malformed(message: str) -> SignalRejected:
    return SignalRejected(400, "malformed", message)


def unsupported(message: str) -> SignalRejected:
    return SignalRejected(415, "unsupported_media_type", message)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _check_attributes(attributes: Mapping[str, Any], where: str) -> None:
    missing = [name for name in REQUIRED if attributes.get(name) in (None, "")]
    if missing:
        raise malformed(f"the event lacks required attribute(s) {', '.join(missing)} ({where})")
    if attributes.get("specversion") != "1.0":
        raise malformed(f"specversion must be '1.0', got {attributes.get('specversion')!r} ({where})")
    for name, limit in ATTRIBUTE_LIMITS.items():
        value = attributes.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise malformed(f"attribute {name} is {len(value)} characters long; at most {limit} are accepted")
    time = attributes.get("time")
    if time is not None and not _is_rfc3339(time):
        raise malformed(
            f"attribute time must be an RFC 3339 timestamp such as 2026-01-01T08:00:00Z, "
            f"got {str(time)[:64]!r}"
        )


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value[:19])  # the calendar: no February 30th, no hour 24
    except ValueError:
        return False
    return True


def _depth(value: Any) -> int:
    """How deeply objects and lists nest in `value` (iteratively; stops counting past MAX_DEPTH)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list) and deepest <= MAX_DEPTH:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _binary_attributes(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower()[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}


def parse_signal(headers: Mapping[str, str], body: bytes) -> Signal:
    """The CloudEvent in a request's headers and body; raises SignalRejected (400 or 415) otherwise."""
    try:
        signal = _parse(headers, body)
    except RecursionError as error:  # JSON nested deeper than the parser's recursion allows
        raise malformed(_TOO_DEEP) from error
    if _depth(signal.data) > MAX_DEPTH:
        raise malformed(_TOO_DEEP)
    return signal


def _parse(headers: Mapping[str, str], body: bytes) -> Signal:
    lowered = {k.lower(): v for k, v in headers.items()}
    media = _media_type(lowered.get("content-type"))
    binary = any(k.startswith("ce-") for k in lowered)
    if binary:
        attributes: Mapping[str, Any] = _binary_attributes(lowered)
        _check_attributes(attributes, "binary mode: ce-* headers")
        if media and not (_JSON_TYPE.match(media) or media.startswith("text/")):
            raise unsupported(
                f"binary-mode data of type {media!r} is not accepted; send JSON (application/json) or text"
            )
    elif media == STRUCTURED_JSON:
        try:
            attributes = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise malformed(f"the body is not valid JSON: {error}") from error
        if not isinstance(attributes, dict):
            raise malformed("a structured-mode event must be a JSON object")
        _check_attributes(attributes, "structured mode: JSON body")
    elif media == BATCH_JSON:
        raise unsupported("batched CloudEvents are not accepted; send each event in its own request")
    elif media.startswith("application/cloudevents"):
        raise unsupported(f"event format {media!r} is not accepted; use application/cloudevents+json")
    else:
        raise unsupported(
            f"content type {media or '(none)'!r} is neither a structured CloudEvent "
            f"({STRUCTURED_JSON}) nor binary mode (ce-specversion, ce-id, ce-source, ce-type headers)"
        )

    try:
        event = from_http(HTTPMessage(dict(lowered), body), JSONFormat(), CloudEvent)
    except (BaseCloudEventException, ValueError, TypeError, AttributeError) as error:
        raise malformed(f"not a valid CloudEvent: {error}") from error

    data = event.get_data()
    if (
        binary
        and body
        and _JSON_TYPE.match(media or "application/json")
        and not isinstance(data, dict | list)
    ):
        # The SDK falls back to text when JSON does not parse; a sender who said JSON should hear it is not.
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise malformed(
                f"the body is declared as JSON ({media or 'default'}) but is not: {error}"
            ) from error
    time = event.get_time() if attributes.get("time") else None
    trace = event.get_extension("traceparent")
    return Signal(
        id=event.get_id(),
        source=event.get_source(),
        type=event.get_type(),
        subject=event.get_subject(),
        time=time if isinstance(time, datetime) else None,
        data=data,
        datacontenttype=event.get_datacontenttype(),
        traceparent=trace if isinstance(trace, str) and _TRACEPARENT.fullmatch(trace) else None,
    )
