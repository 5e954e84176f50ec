"""The generated CRDs: current, structural, documented and bounded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agency_runtime.api import Agent, AgentPolicy, AgentRun, crd
from agency_runtime.api.meta import JsonObject, Resource
from agency_runtime.api.schema import DATE_TIME_RULE, SchemaError, structural, walk

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
KINDS = crd.KINDS


def _schema(kind: type[Resource]) -> JsonObject:
    return crd.openapi_schema(kind)


def test_crds_folder_matches_what_the_models_generate() -> None:
    diffs = crd.stale(CRDS)
    assert not diffs, "crds/ is stale; run `python -m agency_runtime.api.crd --out crds`\n" + "".join(diffs)


def test_check_mode_reports_a_stale_folder_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crd.main(["--out", str(tmp_path)]) == 0
    assert crd.main(["--out", str(tmp_path), "--check"]) == 0
    agents = tmp_path / "agency.dev_agents.yaml"
    agents.write_text(agents.read_text().replace("shortNames:\n    - ag\n", "shortNames: []\n"))
    assert crd.main(["--out", str(tmp_path), "--check"]) == 1
    assert "- ag" in capsys.readouterr().out


def test_one_file_per_kind_named_like_controller_gen_and_the_admission_policies_beside_them() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == [
        "agency.dev_agentpolicies.yaml",
        "agency.dev_agentruns.yaml",
        "agency.dev_agents.yaml",
        "agency.dev_agentschedules.yaml",
        "agency.dev_approvals-admission.yaml",
        "agency.dev_run-children-admission.yaml",
        "agency.dev_run-journals-admission.yaml",
    ]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_kind_has_status_subresource_short_name_and_agency_category(kind: type[Resource]) -> None:
    document = yaml.safe_load((CRDS / crd.file_name(kind)).read_text())
    spec = document["spec"]
    assert spec["group"] == "agency.dev"
    assert spec["names"]["categories"] == ["agency"]
    assert spec["names"]["shortNames"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_field_is_documented(kind: type[Resource]) -> None:
    undocumented = [
        path
        for path, node in walk(_schema(kind))
        if path not in ("", ".metadata", ".metadata.name")
        and not path.endswith(("[]", "{}"))
        and not node.get("description")
    ]
    assert not undocumented


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_string_and_list_is_bounded_so_cel_costs_stay_low(kind: type[Resource]) -> None:
    unbounded = []
    for path, node in walk(_schema(kind)):
        if path in (".apiVersion", ".kind") or "format" in node or "enum" in node:
            continue
        if node.get("type") == "string" and "maxLength" not in node:
            unbounded.append(path)
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(path)
        if node.get("additionalProperties") and "maxProperties" not in node:
            unbounded.append(path)
    assert not unbounded


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_date_time_field_has_a_rule_reading_it_so_an_array_is_refused(kind: type[Resource]) -> None:
    date_times = [(path, node) for path, node in walk(_schema(kind)) if node.get("format") == "date-time"]
    assert date_times
    for path, node in date_times:
        assert DATE_TIME_RULE in node.get("x-kubernetes-validations", []), path


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_schemas_are_structural(kind: type[Resource]) -> None:
    for path, node in walk(_schema(kind)):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert "uniqueItems" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), path
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", [])), path


def _has_path(schema: JsonObject, json_path: str) -> bool:
    node: Any = schema
    for part in re.sub(r"\[[^]]*\]", "", json_path).strip(".").split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return False
        node = node.get("items", node)
    return True


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_printer_columns_point_at_fields_that_exist(kind: type[Resource]) -> None:
    schema = _schema(kind)
    columns = [c.json_path for c in kind.crd.columns if not c.json_path.startswith(".metadata.")]
    assert [path for path in columns if not _has_path(schema, path)] == []


def test_wide_output_of_agents_adds_todays_usage_columns() -> None:
    wide = {c.name for c in Agent.crd.columns if c.priority == 1}
    assert {"Tokens-Today", "Cost-Today"} <= wide


def test_plain_get_of_runs_shows_phase_steps_tokens_and_cost() -> None:
    default = [c.name for c in AgentRun.crd.columns if c.priority == 0]
    assert default[:5] == ["Agent", "Phase", "Steps", "Tokens", "Cost"]


def test_optional_fields_lose_their_null_alternative_and_exclusive_bounds_use_openapi_3_0() -> None:
    schema = _schema(AgentPolicy)
    cost = schema["properties"]["spec"]["properties"]["budgets"]["properties"]["perRun"]["properties"][
        "maxCostUSD"
    ]
    assert cost["type"] == "number"
    assert cost["minimum"] == 0
    assert cost["exclusiveMinimum"] is True
    assert "default" not in cost


def test_a_union_with_no_structural_form_is_refused_by_the_generator() -> None:
    union = {"anyOf": [{"type": "string"}, {"type": "object"}]}
    with pytest.raises(SchemaError, match="anyOf"):
        structural({"type": "object", "properties": {"x": union}})


def test_unique_items_is_refused_in_favour_of_list_type_set() -> None:
    with pytest.raises(SchemaError, match="list-type"):
        structural({"type": "array", "items": {"type": "string"}, "uniqueItems": True})
