"""Bad (and some good) variants of valid manifests, driven by the CRD schemas the API server enforces.

The schema in `crds/` says for every field what it may hold: a type, bounds, an enum, a pattern (as a
CEL `matches` rule with a readable message), list and map sizes, required keys. `sites` walks a valid
manifest together with its schema; a strategy then picks one field present in it and breaks exactly one
of those promises (wrong type, missing required key, out of range, bad enum, bad pattern, too long, huge,
too many or too few items, duplicate list keys, unknown field), or changes it to another value the schema
allows (drop an optional field, an in-range number, another enum value, a string drawn from the pattern).
The allowed variants are where schema gaps show: the API server accepts them, so the operator must cope.

Every case remembers the fields it touched (`path`, comma-separated, in the API server's notation such as
`spec.tools[0].name`), which is what a refusal has to name.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from agency_runtime.api import KINDS, crd
from integration.fuzz.valid_manifests import JsonDict

CRDS = Path(__file__).resolve().parents[3] / "crds"
#: Strings above every maxLength of the API (64 KiB inputs and instructions), far below the request limit.
HUGE = 200_000
UNKNOWN_FIELD = "fuzzUnknownField"
_MATCHES = re.compile(r"self\.matches\(r?'(.+)'\)")

Token = str | int
Tokens = tuple[Token, ...]


@dataclass(frozen=True)
class Case:
    """One manifest to create: what was done to the valid one, and which field that touched.

    `strict` sends `fieldValidation=Strict` (what kubectl does), so unknown fields are refused; without it
    the API server's default drops them with a warning. `update`, for transition rules, is a second
    version of the object sent as an update after `manifest` was created.
    """

    kind: str
    mutation: str
    path: str
    manifest: JsonDict
    strict: bool = True
    update: JsonDict | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.mutation} at {self.path or '(the object)'}"


@cache
def schema(kind: str) -> JsonDict:
    """The openAPIV3Schema of a kind, as the CRD in crds/ gives it to the API server."""
    text = (CRDS / crd.file_name(KINDS[kind])).read_text()
    definition = yaml.safe_load(text)
    found: JsonDict = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def field_path(path: Tokens) -> str:
    """`("spec", "tools", 0, "name")` as the API server writes it: `spec.tools[0].name`."""
    out = ""
    for token in path:
        out += f"[{token}]" if isinstance(token, int) else (f".{token}" if out else token)
    return out


@dataclass(frozen=True)
class Site:
    """A field present in a manifest, its value and the schema it must keep to."""

    path: Tokens
    schema: JsonDict
    value: Any


def sites(node_schema: JsonDict, value: Any, path: Tokens = ()) -> list[Site]:
    """Every field of `value` the schema describes (not inside free-form objects), parents first."""
    found = [Site(path, node_schema, value)]
    if isinstance(value, dict) and not node_schema.get("x-kubernetes-preserve-unknown-fields"):
        properties = node_schema.get("properties", {})
        additional = node_schema.get("additionalProperties")
        for key, sub in value.items():
            if key in properties:
                found += sites(properties[key], sub, (*path, key))
            elif isinstance(additional, dict):
                found += sites(additional, sub, (*path, key))
    elif isinstance(value, list) and isinstance(node_schema.get("items"), dict):
        for index, item in enumerate(value):
            found += sites(node_schema["items"], item, (*path, index))
    return found


def manifest_sites(kind: str, manifest: JsonDict) -> list[Site]:
    """The sites worth mutating: metadata.name and everything under spec (status is the operator's)."""
    root = schema(kind)
    name = Site(("metadata", "name"), root["properties"]["metadata"]["properties"]["name"], "x")
    return [name, *sites(root["properties"]["spec"], manifest["spec"], ("spec",))]


def with_value(manifest: JsonDict, path: Tokens, value: Any) -> JsonDict:
    changed = copy.deepcopy(manifest)
    node: Any = changed
    for token in path[:-1]:
        node = node[token]
    node[path[-1]] = value
    return changed


def _present(manifest: JsonDict, path: Tokens) -> bool:
    """Whether the object or list at `path` is still there (an earlier variant may have dropped it)."""
    node: Any = manifest
    for token in path:
        try:
            node = node[token]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, dict | list)


def without(manifest: JsonDict, path: Tokens) -> JsonDict:
    changed = copy.deepcopy(manifest)
    node: Any = changed
    for token in path[:-1]:
        node = node[token]
    del node[path[-1]]
    return changed


# ----- what a schema node promises ---------------------------------------------------------------------
def pattern_of(node: JsonDict) -> str | None:
    """The regular expression a string must match: `pattern`, or the CEL `matches` rule it became."""
    if "pattern" in node:
        found: str = node["pattern"]
        return found
    for entry in node.get("x-kubernetes-validations", []):
        match = _MATCHES.search(entry["rule"])
        if match:
            return match.group(1).replace("\\\\", "\\")
    return None


def _types(node: JsonDict) -> set[str]:
    if node.get("x-kubernetes-int-or-string"):
        return {"integer", "string"}
    return {node["type"]} if "type" in node else set()


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


def _fits_type(value: Any, types: set[str]) -> bool:
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Arbitrary JSON: what a confused (or hostile) client could put anywhere."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


Variant = tuple[str, st.SearchStrategy[Any]]
"""A mutation's name and a strategy for the value the field gets (`DELETE` removes it)."""
DELETE = object()


def _longer(value: Any, length: int) -> str:
    text = value if isinstance(value, str) and value else "a"
    return (text + text[-1] * length)[:length]


def bad_variants(site: Site) -> list[Variant]:
    """The ways to break one promise of the field's schema."""
    node, value = site.schema, site.value
    types = _types(node)
    out: list[Variant] = []
    if types:
        out.append(("wrong-type", json_values().filter(lambda v: v is not None and not _fits_type(v, types))))
    if "enum" in node:
        allowed = node["enum"]
        near = [str(v).upper() for v in allowed] + [str(v).lower() for v in allowed] + [f"{allowed[0]} "]
        out.append(
            (
                "bad-enum",
                st.one_of(st.sampled_from(near), st.text(max_size=20)).filter(lambda v: v not in allowed),
            )
        )
    if "string" in types:
        pattern = pattern_of(node)
        if pattern is not None:
            compiled = re.compile(pattern)
            out.append(
                (
                    "bad-pattern",
                    st.text(
                        min_size=max(1, node.get("minLength", 1)), max_size=min(node.get("maxLength", 40), 40)
                    ).filter(lambda v: compiled.fullmatch(v) is None),
                )
            )
        if "maxLength" in node:
            out.append(("too-long", st.just(_longer(value, node["maxLength"] + 1))))
            if node["maxLength"] < HUGE:
                out.append(("huge-string", st.just(_longer(value, HUGE))))
        if node.get("minLength", 0) >= 1:
            out.append(("empty-string", st.just("")))
        if node.get("format") == "date-time":
            out.append(
                ("bad-date-time", st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "2026-01-01"]))
            )
    if types & {"integer", "number"} and not node.get("x-kubernetes-int-or-string"):
        integer = "integer" in types
        step = 1 if integer else 0.5
        if "minimum" in node:
            low = node["minimum"] if node.get("exclusiveMinimum") else node["minimum"] - step
            out.append(("below-minimum", st.just(low)))
        if "maximum" in node:
            high = node["maximum"] if node.get("exclusiveMaximum") else node["maximum"] + step
            out.append(("above-maximum", st.just(high)))
        out.append(("out-of-int64", st.sampled_from([2**63, -(2**63) - 1, 10**30])))
        if integer:
            out.append(("fraction-for-integer", st.just(1.5)))
        if site.path and str(site.path[-1]).endswith("Seconds"):
            out.append(("duration-as-text", st.sampled_from(["10m", "1h", "PT5M", "30s", "-1s"])))
    if "array" in types and isinstance(value, list) and value:
        if "maxItems" in node:
            out.append(("too-many-items", st.just(_more_items(value, node["maxItems"] + 1))))
        if node.get("x-kubernetes-list-type") in ("map", "set"):
            out.append(("duplicate-list-key", st.just([*value, copy.deepcopy(value[0])])))
    if "array" in types and node.get("minItems", 0) >= 1:
        out.append(("empty-list", st.just([])))
    if "object" in types and isinstance(value, dict) and "maxProperties" in node:
        extra = {f"k{i}": next(iter(value.values()), "v") for i in range(node["maxProperties"] + 1)}
        out.append(("too-many-keys", st.just(extra)))
    return out


def _more_items(items: list[Any], count: int) -> list[Any]:
    """`count` items made from the existing ones, each a different value where the item is a string or
    names itself (so a list-set or list-map refuses it for its size, not only for duplicates)."""
    out = []
    for index in range(count):
        item = copy.deepcopy(items[index % len(items)])
        if isinstance(item, str):
            item = f"{item[:50]}{index}" if index else item
        elif isinstance(item, dict) and isinstance(item.get("name"), str) and index:
            item["name"] = f"{item['name'][:50]}{index}"
        out.append(item)
    return out


def good_variants(site: Site, required: bool) -> list[Variant]:
    """Other values the schema allows for the field (the API server accepts them, the operator must cope)."""
    node, value = site.schema, site.value
    types = _types(node)
    out: list[Variant] = []
    if not required and site.path[0] != "metadata":
        out.append(("drop-optional", st.just(DELETE)))
    if "enum" in node:
        out.append(("other-enum", st.sampled_from(node["enum"])))
    elif "string" in types and isinstance(value, str):
        low, high = node.get("minLength", 0), min(node.get("maxLength", 64), 64)
        pattern = pattern_of(node)
        if pattern is not None:
            drawn = st.from_regex(pattern, fullmatch=True)
        else:
            drawn = st.text(min_size=low, max_size=high)
        out.append(("allowed-string", drawn.filter(lambda v: low <= len(v) <= node.get("maxLength", 10**9))))
    if "integer" in types and isinstance(value, int) and not isinstance(value, bool):
        out.append(
            ("allowed-integer", st.integers(node.get("minimum", -(2**31)), node.get("maximum", 2**31)))
        )
    if types == {"number"} and isinstance(value, int | float):
        low, high = node.get("minimum", -1e6), node.get("maximum", 1e6)
        out.append(
            (
                "allowed-number",
                st.floats(low, high, exclude_min=bool(node.get("exclusiveMinimum")), allow_nan=False),
            )
        )
    if "array" in types and isinstance(value, list) and value and node.get("minItems", 0) == 0:
        out.append(("empty-list", st.just([])))
    if "object" in types and node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        out.append(("free-form-object", st.dictionaries(st.text(max_size=12), json_values(), max_size=4)))
    return out


def _required(manifest_schema: JsonDict, sites_: Sequence[Site]) -> dict[Tokens, bool]:
    """For each site: whether its parent object lists it as required."""
    by_path = {s.path: s for s in sites_}
    out: dict[Tokens, bool] = {}
    for site in sites_:
        parent = by_path.get(site.path[:-1])
        name = site.path[-1] if site.path else None
        out[site.path] = bool(parent and isinstance(name, str) and name in parent.schema.get("required", []))
    out[("spec",)] = True
    return out


def pick(draw: st.DrawFn, options: Sequence[Any]) -> Any:
    """One of `options`, near-uniformly: `sampled_from` favours the first ones (they shrink best), which
    would leave the far end of a long catalogue of fields untried in a few dozen examples."""
    return options[draw(st.integers(0, 2**32)) % len(options)]


Choice = tuple[Site, str, st.SearchStrategy[Any]]


def _choices(kind: str, base: JsonDict, *, good: bool) -> list[Choice]:
    """Every (field, mutation, values) the base offers: built once per test, drawn from per example."""
    found = manifest_sites(kind, base)
    required = _required(schema(kind), found)
    choices: list[Choice] = []
    for site in found:
        if good and site.path[0] == "metadata":
            continue  # names must stay unique; bad names are the bad variants' business
        variants = good_variants(site, required[site.path]) if good else bad_variants(site)
        choices += [(site, name, values) for name, values in variants]
        if not good and isinstance(site.value, dict) and site.schema.get("type") == "object":
            for key in site.schema.get("required", []):
                if key in site.value:
                    choices.append((Site((*site.path, key), {}, None), "missing-required", st.just(DELETE)))
            if "properties" in site.schema and not site.schema.get("x-kubernetes-preserve-unknown-fields"):
                choices.append((Site((*site.path, UNKNOWN_FIELD), {}, None), "unknown-field", json_values(3)))
    return choices


def schema_case(kind: str, base: JsonDict, *, good: bool) -> st.SearchStrategy[Case]:
    """One field of `base` broken (or, with `good`, changed to another allowed value)."""
    choices = _choices(kind, base, good=good)

    @st.composite
    def case(draw: st.DrawFn) -> Case:
        # Allowed variants come one to three at a time: each is harmless alone, and combinations are
        # where a schema gap hides; a broken field comes alone, so its refusal can only be about it.
        manifest, done = base, []
        for _ in range(draw(st.integers(1, 3)) if good else 1):
            site, mutation, values = pick(draw, choices)
            if not _present(manifest, site.path[:-1]) or field_path(site.path) in (p for _, p in done):
                continue
            value = draw(values)
            if site.path == ("metadata", "name"):
                mutation = f"name-{mutation}"
            try:
                manifest = (
                    without(manifest, site.path)
                    if value is DELETE
                    else with_value(manifest, site.path, value)
                )
            except (KeyError, IndexError):  # an earlier variant of this case took the field away
                continue
            done.append((mutation, field_path(site.path)))
        mutation, path = "+".join(m for m, _ in done), ", ".join(p for _, p in done)
        strict = mutation != "unknown-field" or draw(st.booleans())
        return Case(kind, mutation if strict else "unknown-field-pruned", path, manifest, strict=strict)

    return case()


@st.composite
def random_spec(draw: st.DrawFn, kind: str, base: JsonDict) -> Case:
    """The spec replaced by arbitrary JSON (an object most of the time, so the fields are checked)."""
    spec = draw(st.one_of(st.dictionaries(st.text(max_size=16), json_values(), max_size=6), json_values()))
    return Case(kind, "random-spec", "spec", {**base, "spec": spec}, strict=draw(st.booleans()))
