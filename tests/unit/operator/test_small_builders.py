"""Run file, credentials check, token request, executor results, settings and the operator's RBAC."""

from __future__ import annotations

import json

import pytest
from operator_objects import RUN_UID, agent_obj, policy_obj, run_body, run_obj

from agency_operator.credentials import check_secret
from agency_operator.executors import parse_result
from agency_operator.rbac import build_operator_cluster_role
from agency_operator.runfile import build_run_file, build_run_file_config_map
from agency_operator.settings import ExecutorKind, Settings, SettingsError
from agency_operator.token import build_token_request
from agency_runtime.api.common import SecretKeyReference
from agency_runtime.runfile import RunFile

REF = SecretKeyReference(name="model-key", key="apiKey")


def test_run_file_is_what_the_runtime_reads_and_holds_no_secret() -> None:
    content = build_run_file(run_obj(), agent_obj(), policy_obj(models={"allowed": ["openai/*"]}))
    parsed = RunFile.model_validate(content)
    assert parsed.input == "check the fleet"
    assert parsed.agent.model.name == "openai/gpt-4o-mini"
    assert parsed.policy is not None
    assert parsed.policy.models.allowed == ["openai/*"]
    config_map = build_run_file_config_map(run_body(), content)
    assert config_map["immutable"] is True
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == RUN_UID
    assert json.loads(config_map["data"]["run.json"]) == content


def test_missing_secret_is_named_with_its_key_and_field() -> None:
    refusal = check_secret(None, REF, "spec.model.credentialsSecretRef", "helper", "fleet")
    assert refusal is not None
    assert refusal.reason == "SecretNotFound"
    assert "Secret model-key, key apiKey (spec.model.credentialsSecretRef)" in refusal.message
    assert not refusal.permanent


def test_missing_key_lists_the_keys_the_secret_has() -> None:
    refusal = check_secret(
        {"data": {"token": "eA=="}}, REF, "spec.model.credentialsSecretRef", "helper", "fleet"
    )
    assert refusal is not None
    assert refusal.reason == "SecretKeyNotFound"
    assert "has no key apiKey (its keys: token)" in refusal.message


def test_present_key_passes() -> None:
    assert check_secret({"data": {"apiKey": "eA=="}}, REF, "f", "helper", "fleet") is None


def test_token_request_carries_the_policys_audience_and_lifetime() -> None:
    spec = build_token_request(
        policy_obj(identity={"tokenAudience": "vault", "tokenExpirationSeconds": 900})
    )["spec"]
    assert spec == {"audiences": ["vault"], "expirationSeconds": 900}
    assert build_token_request(policy_obj())["spec"] == {"expirationSeconds": 3600}


def test_result_is_the_last_json_line_with_a_phase() -> None:
    text = 'log line\n{"not": "a result"}\n{"phase": "Succeeded", "steps": 2}\n'
    assert parse_result(text) == {"phase": "Succeeded", "steps": 2}
    assert parse_result('{\n  "phase": "Failed"\n}') == {"phase": "Failed"}
    assert parse_result("Traceback (most recent call last):") is None
    assert parse_result(None) is None


def test_settings_come_from_agency_variables() -> None:
    settings = Settings.from_env(
        {
            "AGENCY_EXECUTOR": "local",
            "AGENCY_NAMESPACES": "a, b",
            "AGENCY_RESYNC_SECONDS": "2.5",
            "AGENCY_OTLP_ENDPOINT": "http://otel:4318",
            "AGENCY_WORKERS": "8",
        }
    )
    assert settings.workers == 8
    assert settings.executor is ExecutorKind.LOCAL
    assert settings.namespaces == ("a", "b")
    assert settings.resync_seconds == 2.5
    assert settings.otlp_endpoint == "http://otel:4318"
    assert settings.runtime_command[1:] == ("-m", "agency_runtime")


def test_bad_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="AGENCY_EXECUTOR='job'"):
        Settings.from_env({"AGENCY_EXECUTOR": "job"})
    with pytest.raises(SettingsError, match="AGENCY_TOKEN_TTL_SECONDS"):
        Settings.from_env({"AGENCY_TOKEN_TTL_SECONDS": "60"})
    with pytest.raises(SettingsError, match="AGENCY_WORKERS='0' must be at least 1"):
        Settings.from_env({"AGENCY_WORKERS": "0"})


def test_operator_role_never_escalates_and_binds_only_listed_cluster_roles() -> None:
    role = build_operator_cluster_role("agency-operator", ["view", "agency-reader"])
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert "escalate" not in verbs
    assert "*" not in verbs
    (bind,) = [rule for rule in role["rules"] if "bind" in rule["verbs"]]
    assert bind == {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles"],
        "verbs": ["bind"],
        "resourceNames": ["agency-reader", "view"],
    }
