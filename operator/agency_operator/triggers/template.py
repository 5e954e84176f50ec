"""The input template of an AgentSchedule: `{{ name }}` placeholders replaced by strings, nothing else.

The template is user data and the event is sender data, so rendering is plain substitution: no
expressions, no loops, no attribute access beyond walking into the event's JSON data, and substituted
values are never scanned again (a value containing `{{ ... }}` stays as it is).

Placeholders:

- `{{ scheduledTime }}`: the slot time (cron) or the time the event arrived (signals), RFC 3339 in UTC;
- `{{ schedule }}`: the AgentSchedule's name;
- `{{ signal.id }}`, `{{ signal.type }}`, `{{ signal.source }}`, `{{ signal.subject }}`,
  `{{ signal.time }}`: the CloudEvent's attributes (empty when the event has none);
- `{{ signal.data }}`: the event data (JSON text when it is structured);
- `{{ signal.data.<field>.<field>... }}`: one value inside JSON data; list items by index
  (`signal.data.readings.0`). A missing field renders empty.

A placeholder that names none of these stays in the input unchanged, so a typo is visible in the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from agency_runtime.api.run import MAX_INPUT

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")

#: Marker for "this placeholder names nothing we know": left as written.
_UNKNOWN = object()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _walk(value: object, path: list[str]) -> object:
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _lookup(name: str, variables: Mapping[str, Any]) -> object:
    head, *path = name.split(".")
    if head not in variables:
        return _UNKNOWN
    value = variables[head]
    if not path:
        return value
    if head == "signal" and isinstance(value, Mapping):
        attribute, *inner = path
        if attribute not in value:
            return _UNKNOWN
        if attribute == "data":
            return _walk(value[attribute], inner)
        return None if inner else value[attribute]
    return _UNKNOWN


def render_input(template: str, variables: Mapping[str, Any]) -> str:
    """Replace the known placeholders in `template`; the result is cut to the AgentRun input limit.

    `variables` holds `scheduledTime`, `schedule` and, for signal runs, `signal` (a mapping with id, type,
    source, subject, time and data), as `schedule_variables` and `signal_variables` build them.
    """

    def replace(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), variables)
        return match.group(0) if value is _UNKNOWN else _text(value)

    return _PLACEHOLDER.sub(replace, template)[:MAX_INPUT]
