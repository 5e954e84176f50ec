from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from operator_objects import RUN_UID, agent_obj, policy_obj, run_body, run_obj

from agency_operator.environment import build_run_env
from agency_operator.runfile import build_run_file_config_map
from agency_operator.runpod import build_pod, pod_placement
from agency_operator.settings import Settings, SettingsError
from agency_runtime.contract import Budget

SETTINGS = Settings(runtime_image="registry.example/agency-runtime:1", otlp_endpoint="http://otel:4318")


def _pod(**policy_spec: object) -> dict[str, object]:
    policy = policy_obj(**policy_spec)
    env = build_run_env(
        run_obj(),
        Budget(max_steps=5, max_wall_seconds=600),
        pod_placement(SETTINGS),
        otlp_endpoint=SETTINGS.otlp_endpoint,
        trace_parent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    return build_pod(run_body(), agent_obj(), policy, env, SETTINGS)


def test_pod_runs_as_non_root_with_read_only_root_and_no_capabilities() -> None:
    pod = _pod()
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in spec["volumes"]


def test_pod_token_is_projected_with_the_policys_audience_and_lifetime_and_never_automounted() -> None:
    spec = _pod(identity={"tokenAudience": "vault", "tokenExpirationSeconds": 1200})["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "agency-run-r1"
    projected = next(v for v in spec["volumes"] if v["name"] == "token")["projected"]["sources"]
    assert projected[0] == {
        "serviceAccountToken": {"path": "token", "expirationSeconds": 1200, "audience": "vault"}
    }


def test_pod_without_policy_audience_uses_the_api_servers_default() -> None:
    spec = _pod()["spec"]
    projected = next(v for v in spec["volumes"] if v["name"] == "token")["projected"]["sources"]
    assert "audience" not in projected[0]["serviceAccountToken"]


def test_model_key_comes_from_a_secret_reference_never_a_value() -> None:
    (container,) = _pod()["spec"]["containers"]
    key = next(e for e in container["env"] if e["name"] == "AGENCY_MODEL_API_KEY")
    assert key == {
        "name": "AGENCY_MODEL_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "model-key", "key": "apiKey"}},
    }


def test_each_fallback_and_the_judge_get_their_own_key_by_reference() -> None:
    agent = agent_obj(
        fallbacks=[
            {"name": "anthropic/claude-haiku", "credentialsSecretRef": {"name": "anthropic", "key": "key"}},
            {"name": "openai/gpt-4o"},  # no key of its own: the primary's
        ],
        judge={
            "model": {"name": "openai/judge", "credentialsSecretRef": {"name": "judge", "key": "k"}},
            "rubric": "Was the answer right?",
        },
    )
    env = build_run_env(run_obj(), Budget(), pod_placement(SETTINGS), otlp_endpoint=None, trace_parent=None)
    (container,) = build_pod(run_body(), agent, policy_obj(), env, SETTINGS)["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {
        "AGENCY_MODEL_API_KEY": {"name": "model-key", "key": "apiKey"},
        "AGENCY_MODEL_FALLBACK_0_API_KEY": {"name": "anthropic", "key": "key"},
        "AGENCY_JUDGE_API_KEY": {"name": "judge", "key": "k"},
    }


def test_pod_env_is_the_contracts_env_with_trace_parent_and_otlp() -> None:
    (container,) = _pod()["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AGENCY_RUN_NAME"] == "r1"
    assert env["AGENCY_RUN_UID"] == RUN_UID
    assert env["AGENCY_RUN_FILE"] == "/etc/agency/run/run.json"
    assert env["AGENCY_KUBE_TOKEN_FILE"] == "/var/run/secrets/agency.dev/serviceaccount/token"
    assert env["AGENCY_BUDGET_MAX_STEPS"] == "5"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel:4318"
    assert env["OTEL_SERVICE_NAME"] == "agency-runtime"
    assert env["TRACEPARENT"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_pod_is_owned_by_the_run_and_bounded_by_its_wall_clock_budget() -> None:
    pod = _pod()
    assert pod["metadata"]["ownerReferences"][0]["uid"] == RUN_UID
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["activeDeadlineSeconds"] == 660


def test_run_file_is_mounted_read_only_from_the_runs_config_map() -> None:
    spec = _pod()["spec"]
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "run-file")
    assert mount["readOnly"] is True
    assert Path(mount["mountPath"]) / "run.json" == Path("/etc/agency/run/run.json")
    volume = next(v for v in spec["volumes"] if v["name"] == "run-file")
    assert volume["configMap"]["name"] == "agency-run-r1"


def test_agent_may_override_image_and_resources() -> None:
    settings = SETTINGS
    agent = agent_obj(runtime={"image": "custom:2", "resources": {"limits": {"memory": "1Gi"}}})
    env = build_run_env(run_obj(), Budget(), pod_placement(settings), otlp_endpoint=None, trace_parent=None)
    (container,) = build_pod(run_body(), agent, policy_obj(), env, settings)["spec"]["containers"]
    assert container["image"] == "custom:2"
    assert container["resources"] == {"limits": {"memory": "1Gi"}}


def _signal_pod(settings: Settings) -> dict[str, Any]:
    env = build_run_env(run_obj(), Budget(), pod_placement(settings), otlp_endpoint=None, trace_parent=None)
    return build_pod(run_body(), agent_obj(), policy_obj(), env, settings)


def test_a_pod_that_may_publish_signals_gets_the_url_and_a_second_token_for_the_endpoints_audience() -> None:
    settings = Settings(
        run_signal_url="https://agency-signals.agency-system.svc:443/namespaces/{namespace}/signals",
        signals_audience="agency.dev/signals",
    )
    spec = _signal_pod(settings)["spec"]
    projected = next(v for v in spec["volumes"] if v["name"] == "token")["projected"]["sources"]
    tokens = [s["serviceAccountToken"] for s in projected if "serviceAccountToken" in s]
    assert [t.get("audience") for t in tokens] == [None, "agency.dev/signals"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AGENCY_SIGNAL_URL"] == settings.run_signal_url
    assert (
        env["AGENCY_SIGNAL_TOKEN_FILE"] == f"/var/run/secrets/agency.dev/serviceaccount/{tokens[1]['path']}"
    )


def test_a_pod_without_a_signal_endpoint_gets_neither_url_nor_signal_token() -> None:
    spec = _signal_pod(Settings(signals_port=8443))["spec"]  # Pods need the Service URL: none is given
    projected = next(v for v in spec["volumes"] if v["name"] == "token")["projected"]["sources"]
    assert len([s for s in projected if "serviceAccountToken" in s]) == 1
    (container,) = spec["containers"]
    assert not {e["name"] for e in container["env"]} & {"AGENCY_SIGNAL_URL", "AGENCY_SIGNAL_TOKEN_FILE"}


def test_a_pod_that_publishes_signals_trusts_the_endpoints_private_ca_from_its_run_file(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nprivate CA\n-----END CERTIFICATE-----\n")
    settings = Settings(
        run_signal_url="https://agency-signals.agency-system.svc:443/namespaces/{namespace}/signals",
        signals_ca_file=ca,
    )
    spec = _signal_pod(settings)["spec"]
    projected = next(v for v in spec["volumes"] if v["name"] == "token")["projected"]["sources"]
    (from_run_file,) = [
        s["configMap"] for s in projected if s.get("configMap", {}).get("name") == "agency-run-r1"
    ]
    (item,) = from_run_file["items"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AGENCY_SIGNAL_CA_FILE"] == f"/var/run/secrets/agency.dev/serviceaccount/{item['path']}"
    config_map = build_run_file_config_map(run_body(), {"input": "x"}, settings.signals_ca())
    assert config_map["data"][item["key"]] == ca.read_text()


def test_runs_trust_the_system_cas_for_signals_when_no_ca_is_given() -> None:
    settings = Settings(run_signal_url="https://signals.example.com/namespaces/{namespace}/signals")
    spec = _signal_pod(settings)["spec"]
    (container,) = spec["containers"]
    assert "AGENCY_SIGNAL_CA_FILE" not in {e["name"] for e in container["env"]}
    assert settings.signals_ca() is None
    assert set(build_run_file_config_map(run_body(), {}, settings.signals_ca())["data"]) == {"run.json"}


def test_an_unreadable_signals_ca_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    settings = Settings(run_signal_url="https://s.example/{namespace}", signals_ca_file=tmp_path / "gone.crt")
    with pytest.raises(SettingsError, match=r"AGENCY_SIGNALS_CA_FILE .*gone\.crt cannot be read"):
        settings.signals_ca()
