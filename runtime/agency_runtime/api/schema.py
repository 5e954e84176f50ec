"""Turn a pydantic JSON Schema into a Kubernetes structural schema.

Structural schemas allow no `$ref`, no `anyOf` standing for Optional, no `title`, no `uniqueItems`,
and spell exclusive bounds the OpenAPI v3.0 way; everything else pydantic emits carries over.
"""

from __future__ import annotations

import copy
from typing import Any

from agency_runtime.api.meta import PATTERN_MESSAGE, JsonObject

_DROP = frozenset({"title", "additionalProperties"})
_MERGED_LISTS = frozenset({"x-kubernetes-validations"})


class SchemaError(ValueError):
    """A model uses a construct that has no structural-schema form."""


def structural(schema: JsonObject) -> JsonObject:
    """The structural form of a pydantic model's JSON Schema, with every `$defs` entry inlined."""
    defs: dict[str, JsonObject] = schema.get("$defs", {})
    root = {k: v for k, v in schema.items() if k != "$defs"}
    return _tidy(_convert(root, defs, path=""))


_FIRST = ("description", "type", "format", "enum", "default")
_LAST = ("required", "properties", "items", "additionalProperties")


def _tidy(node: JsonObject) -> JsonObject:
    """Descriptions as single paragraphs and keys in a stable, readable order (docs and type first)."""
    out: JsonObject = {}
    keys = [k for k in _FIRST if k in node]
    keys += sorted(k for k in node if k not in _FIRST and k not in _LAST)
    keys += [k for k in _LAST if k in node]
    for key in keys:
        value = node[key]
        if key == "description":
            value = " ".join(value.split())
        elif key == "properties":
            value = {name: _tidy(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _tidy(value)
        out[key] = value
    return out


def _convert(node: JsonObject, defs: dict[str, JsonObject], path: str) -> JsonObject:
    node = _resolve(node, defs, path)
    out: JsonObject = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            out["properties"] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs, f"{path}[]")
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "uniqueItems":
            raise SchemaError(f"{path}: uniqueItems is not allowed; use x-kubernetes-list-type: set")
        else:
            out[key] = value
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        if additional:
            out["additionalProperties"] = _convert(additional, defs, f"{path}{{}}")
        elif "properties" not in node:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif additional is True and "properties" not in node:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if PATTERN_MESSAGE in out:
        _pattern_as_rule(out, path)
    if out.get("format") == "date-time":
        out["x-kubernetes-validations"] = [*out.get("x-kubernetes-validations", []), dict(DATE_TIME_RULE)]
    return out


#: kube-apiserver (1.35) stores a JSON array given for a `type: string, format: date-time` field: the
#: schema check lets it through, so the object could never be parsed again. A CEL rule reads the value as
#: a timestamp, which refuses anything else with this message, naming the field.
DATE_TIME_RULE: JsonObject = {
    "rule": "type(self) == google.protobuf.Timestamp",
    "message": "must be an RFC 3339 date-time such as 2026-01-01T08:00:00Z",
}


def _pattern_as_rule(node: JsonObject, path: str) -> None:
    """Replace `pattern` by the same regular expression in a CEL rule that carries a readable message."""
    message = node.pop(PATTERN_MESSAGE)
    pattern = node.pop("pattern")
    if "'" in pattern:
        raise SchemaError(f"{path}: a pattern with a quote cannot be embedded in a CEL raw string")
    test = f"self.matches(r'{pattern}')"
    if node.get("x-kubernetes-int-or-string"):
        test = f"type(self) == int || {test}"
    node["x-kubernetes-validations"] = [
        *node.get("x-kubernetes-validations", []),
        {"rule": test, "message": message},
    ]


def _resolve(node: JsonObject, defs: dict[str, JsonObject], path: str) -> JsonObject:
    """Inline `$ref` and collapse Optional/int-or-string `anyOf`, keeping the field's own keys on top."""
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        return _resolve(_merge(target, {k: v for k, v in node.items() if k != "$ref"}), defs, path)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _resolve(_merge(copy.deepcopy(node["allOf"][0]), rest), defs, path)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _resolve(_merge(copy.deepcopy(options[0]), rest), defs, path)
        if sorted(o.get("type", "") for o in options) == ["integer", "string"]:
            return _int_or_string(options, rest)
        raise SchemaError(f"{path}: anyOf with {len(options)} alternatives has no structural form")
    return node


def _int_or_string(options: list[JsonObject], rest: JsonObject) -> JsonObject:
    """Kubernetes' one permitted union, with string constraints lifted to where OpenAPI applies them."""
    out: JsonObject = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
    for option in options:
        out.update({k: v for k, v in option.items() if k not in ("type", "title")})
    out.update(rest)
    return out


def _merge(base: JsonObject, top: JsonObject) -> JsonObject:
    """Keys of `top` (the field) win over `base` (the type), except lists of CEL rules, which add up."""
    merged = dict(base)
    for key, value in top.items():
        if key in _MERGED_LISTS and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def walk(schema: JsonObject, path: str = "") -> list[tuple[str, JsonObject]]:
    """Every (path, node) of a structural schema, for checks that each field has docs and bounds."""
    found: list[tuple[str, JsonObject]] = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found.extend(walk(sub, f"{path}.{name}"))
    items: Any = schema.get("items")
    if isinstance(items, dict):
        found.extend(walk(items, f"{path}[]"))
    additional: Any = schema.get("additionalProperties")
    if isinstance(additional, dict):
        found.extend(walk(additional, f"{path}{{}}"))
    return found
