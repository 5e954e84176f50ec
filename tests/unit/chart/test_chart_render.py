"""The Helm chart without a cluster: `helm lint`, and `helm template` with the values files in `values/`.

Each values file is one way people install the chart; the tests parse what Helm renders and check what
a user relies on: the operator Pod's restricted security, one replica, the RBAC rules (no wildcard, no
escalate, `bind` only on the roles the values name), the environment the operator reads, the CRD copy,
and that bad values are refused before anything reaches a cluster.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from agency_operator.rbac import build_operator_cluster_role
from agency_operator.settings import ExecutorKind, Settings
from agency_testbed.build import bin_dir

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "agency"
VALUES = Path(__file__).resolve().parent / "values"
RELEASE, NAMESPACE = "agency", "agency-system"
VALUES_FILES = sorted(p.name for p in VALUES.glob("*.yaml"))
#: Values files that need APIs `helm template` does not assume (helm lint cannot be told about them).
EXTRA_APIS = {"servicemonitor.yaml": ["monitoring.coreos.com/v1/ServiceMonitor"]}
SECURE_UID = 65532

Manifest = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = bin_dir() / "helm"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make testbed-build` (it builds helm with the control plane)")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120, check=False)


def template_args(values_file: str) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(VALUES / values_file)]
    for api in EXTRA_APIS.get(values_file, []):
        args += ["--api-versions", api]
    return args


@functools.cache
def render(values_file: str) -> tuple[Manifest, ...]:
    """Every object `helm template` renders with the values file (and the chart's defaults under it)."""
    proc = helm(*template_args(values_file))
    assert proc.returncode == 0, proc.stderr
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def render_with(tmp_path: Path, values: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "values.yaml"
    path.write_text(values, encoding="utf-8")
    return helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(path))


def values_of(values_file: str) -> dict[str, Any]:
    """The values a file sets merged over the chart's defaults (dicts merge, lists replace, like Helm)."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            out[key] = (
                merge(out[key], value)
                if isinstance(value, dict) and isinstance(out.get(key), dict)
                else value
            )
        return out

    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return merge(defaults, yaml.safe_load((VALUES / values_file).read_text(encoding="utf-8")) or {})


def only(objs: tuple[Manifest, ...], kind: str) -> Manifest:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def of_kind(objs: tuple[Manifest, ...], *kinds: str) -> list[Manifest]:
    return [o for o in objs if o["kind"] in kinds]


def operator_container(objs: tuple[Manifest, ...]) -> Manifest:
    containers = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: Manifest = containers[0]
    return container


def env_of(objs: tuple[Manifest, ...]) -> dict[str, Manifest]:
    return {e["name"]: e for e in operator_container(objs).get("env", [])}


def plain_env(objs: tuple[Manifest, ...]) -> dict[str, str]:
    return {name: e["value"] for name, e in env_of(objs).items() if "value" in e}


def operator_rules(objs: tuple[Manifest, ...]) -> list[Manifest]:
    role = next(
        o
        for o in of_kind(objs, "ClusterRole")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    )
    rules: list[Manifest] = role["rules"]
    return rules


def grants(rules: list[Manifest]) -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
    """(group, resource, verb, resourceNames) for every permission the rules give."""
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule["verbs"]:
                    yield group, resource, verb, tuple(rule.get("resourceNames", ()))


def allowed(rules: list[Manifest], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    """Whether the rules allow the request, as the RBAC authorizer decides it (no wildcards here)."""
    return any(
        (g, r, v) == (group, resource, verb) and (not names or (name is not None and name in names))
        for g, r, v, names in grants(rules)
    )


# ----- helm lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", [f for f in VALUES_FILES if f not in EXTRA_APIS])
def test_chart_passes_helm_lint_strict(values_file: str) -> None:
    proc = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(VALUES / values_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


# ----- the operator Deployment ---------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_operator_runs_exactly_one_replica_replaced_with_recreate(values_file: str) -> None:
    deployment = only(render(values_file), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_operator_pod_meets_the_restricted_pod_security_profile(values_file: str) -> None:
    pod = only(render(values_file), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == SECURE_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = operator_container(render(values_file))["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == SECURE_UID
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host_namespace)


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_only_tmp_is_writable_and_it_is_a_bounded_empty_dir(values_file: str) -> None:
    objs = render(values_file)
    volumes = {v["name"]: v for v in only(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    writable = [m for m in operator_container(objs)["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"]
    assert volumes[writable[0]["name"]]["emptyDir"]["sizeLimit"]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_liveness_probe_asks_the_endpoint_the_operator_serves(values_file: str) -> None:
    objs = render(values_file)
    container = operator_container(objs)
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    settings = Settings.from_env(plain_env(objs))
    assert settings.liveness_endpoint == f"http://0.0.0.0:{ports[probe['port']]}{probe['path']}"


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_operator_settings_read_back_what_the_values_say(values_file: str) -> None:
    objs, values = render(values_file), values_of(values_file)
    settings = Settings.from_env(plain_env(objs))
    assert settings.executor is ExecutorKind(values["executor"])
    assert settings.namespaces == tuple(values["watchNamespaces"])
    assert settings.otlp_endpoint == (values["otlp"]["endpoint"] or None)
    assert settings.metrics_port == values["metrics"]["port"]
    assert settings.token_ttl_seconds == values["runs"]["tokenTtlSeconds"]
    assert settings.workers == values["reconcile"]["workers"]
    assert settings.api_server_cidrs == tuple(values["runs"]["apiServerCIDRs"])
    if values["runtime"]["command"]:
        assert list(settings.runtime_command) == values["runtime"]["command"]
    ports = {p["name"]: p["containerPort"] for p in operator_container(objs)["ports"]}
    assert ports["metrics"] == settings.metrics_port


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.data = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return self.data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


#: Variables the chart sets for parts of the operator still being built, with the part that reads them.
AWAITING_OPERATOR = {
    "AGENCY_DEFAULT_POLICY": "the default policy's name",
}


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_every_agency_variable_the_chart_sets_is_one_the_operator_reads(values_file: str) -> None:
    env = RecordingEnv(plain_env(render(values_file)))
    Settings.from_env(env)
    unread = {k for k in env if k.startswith("AGENCY_") and k not in env.asked}
    unexplained = sorted(unread - AWAITING_OPERATOR.keys())
    assert not unexplained, f"set by the chart, read by nobody: {unexplained}"


def test_runtime_image_defaults_to_the_operator_image() -> None:
    objs = render("defaults.yaml")
    assert plain_env(objs)["AGENCY_RUNTIME_IMAGE"] == operator_container(objs)["image"]
    assert operator_container(objs)["image"] == "ghcr.io/agency-dev/agency:0.1.0"


def test_runtime_image_pinned_by_digest_and_operator_tag_are_both_honoured() -> None:
    objs = render("namespaces-otlp.yaml")
    assert plain_env(objs)["AGENCY_RUNTIME_IMAGE"] == (
        "registry.example.com/agency-runtime@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert operator_container(objs)["image"] == "ghcr.io/agency-dev/agency:0.1.1"


def test_otlp_headers_come_from_the_secret_and_never_appear_as_a_value() -> None:
    env = env_of(render("namespaces-otlp.yaml"))
    headers = env["OTEL_EXPORTER_OTLP_HEADERS"]
    assert "value" not in headers
    assert headers["valueFrom"] == {"secretKeyRef": {"name": "otlp-credentials", "key": "headers"}}


def test_no_otlp_headers_variable_without_a_secret() -> None:
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env_of(render("defaults.yaml"))


def test_signal_endpoint_is_served_over_tls_when_a_secret_is_given() -> None:
    objs = render("namespaces-otlp.yaml")
    env = plain_env(objs)
    mounts = {m["mountPath"]: m for m in operator_container(objs)["volumeMounts"]}
    cert_dir = str(Path(env["AGENCY_SIGNALS_TLS_CERT_FILE"]).parent)
    assert mounts[cert_dir]["readOnly"] is True
    volumes = {v["name"]: v for v in only(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[cert_dir]["name"]]["secret"]["secretName"] == "agency-signals-tls"
    service = next(o for o in of_kind(objs, "Service") if o["metadata"]["name"].endswith("-signals"))
    assert service["spec"]["ports"][0]["name"] == "https"
    assert service["spec"]["ports"][0]["port"] == 443
    # runs trust the CA of that same Secret (the operator copies it into each run's run file)
    assert env["AGENCY_SIGNALS_CA_FILE"] == f"{cert_dir}/ca.crt"


def test_runs_trust_the_system_cas_for_signals_unless_a_ca_key_is_given() -> None:
    assert "AGENCY_SIGNALS_CA_FILE" not in env_of(render("defaults.yaml"))


def test_operator_serves_signals_where_the_chart_says_and_tells_runs_the_service_url() -> None:
    objs = render("namespaces-otlp.yaml")
    settings = Settings.from_env(plain_env(objs))
    ports = {p["name"]: p["containerPort"] for p in operator_container(objs)["ports"]}
    assert settings.signals_port == ports["signals"]
    assert settings.signals_audience == "agency.dev/signals"
    assert settings.signals_tls_cert_file is not None
    assert settings.signals_tls_cert_file.name == "tls.crt"
    assert settings.signals_url_for_runs() == (
        f"https://agency-signals.{NAMESPACE}.svc:443/namespaces/{{namespace}}/signals"
    )
    pod_labels = only(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert settings.signals_peer_namespace == NAMESPACE
    assert settings.signals_peer_labels, "run Pods' NetworkPolicies name the operator's Pods"
    assert all(pod_labels.get(key) == value for key, value in settings.signals_peer_labels)


def test_signals_switched_off_are_not_served_and_runs_get_no_url() -> None:
    settings = Settings.from_env(plain_env(render("local-executor.yaml")))
    assert settings.signals_port == 0
    assert settings.signals_url_for_runs() is None


def test_signal_endpoint_without_tls_is_offered_as_plain_http_on_port_80() -> None:
    objs = render("defaults.yaml")
    service = next(o for o in of_kind(objs, "Service") if o["metadata"]["name"].endswith("-signals"))
    assert service["spec"]["ports"][0]["name"] == "http"
    assert service["spec"]["ports"][0]["port"] == 80
    assert "AGENCY_SIGNALS_TLS_CERT_FILE" not in env_of(objs)


def test_services_select_the_operator_pod_and_target_its_named_ports() -> None:
    objs = render("defaults.yaml")
    deployment = only(objs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in operator_container(objs)["ports"]}
    services = of_kind(objs, "Service")
    assert {s["metadata"]["name"] for s in services} == {"agency-metrics", "agency-signals", "agency-webhook"}
    for service in services:
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_signal_endpoint_can_be_switched_off() -> None:
    objs = render("local-executor.yaml")
    assert "agency-signals" not in [s["metadata"]["name"] for s in of_kind(objs, "Service")]
    assert "signals" not in {p["name"] for p in operator_container(objs)["ports"]}
    assert not allowed(operator_rules(objs), "authentication.k8s.io", "tokenreviews", "create")


def test_webhook_is_served_where_its_service_points_and_the_operator_may_manage_only_its_configuration() -> (
    None
):
    objs = render("defaults.yaml")
    settings = Settings.from_env(plain_env(objs))
    service = next(o for o in of_kind(objs, "Service") if o["metadata"]["name"] == "agency-webhook")
    (port,) = service["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for p in operator_container(objs)["ports"]}
    # kopf advertises https://<host>:<its port>/..., so the Service must answer on the container's port.
    assert port["port"] == container_ports["webhook"] == settings.webhook_port
    assert settings.webhook_host == f"agency-webhook.{NAMESPACE}.svc"
    rules = operator_rules(objs)
    group, resource = "admissionregistration.k8s.io", "validatingwebhookconfigurations"
    assert allowed(rules, group, resource, "create")
    assert allowed(rules, group, resource, "patch", "agency.dev")
    assert not allowed(rules, group, resource, "patch", "someone-elses-webhook")
    assert not allowed(rules, group, resource, "delete", "agency.dev")


def test_webhook_can_be_switched_off(tmp_path: Path) -> None:
    proc = render_with(tmp_path, "webhook:\n  enabled: false\n")
    assert proc.returncode == 0, proc.stderr
    objs = tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)
    assert "agency-webhook" not in [s["metadata"]["name"] for s in of_kind(objs, "Service")]
    assert Settings.from_env(plain_env(objs)).webhook_port == 0
    assert not allowed(
        operator_rules(objs), "admissionregistration.k8s.io", "validatingwebhookconfigurations", "create"
    )


# ----- RBAC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_no_rbac_rule_uses_a_wildcard_or_escalate(values_file: str) -> None:
    for role in of_kind(render(values_file), "ClusterRole", "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {rule}"
            assert "escalate" not in rule["verbs"], f"{role['metadata']['name']}: {rule}"
            assert "impersonate" not in rule["verbs"], f"{role['metadata']['name']}: {rule}"


@pytest.mark.parametrize("values_file", [f for f in VALUES_FILES if f != "no-rbac.yaml"])
def test_operator_may_bind_only_the_cluster_roles_named_in_values(values_file: str) -> None:
    rules, values = operator_rules(render(values_file)), values_of(values_file)
    binds = [(g, r, names) for g, r, v, names in grants(rules) if v == "bind"]
    assert binds == [
        ("rbac.authorization.k8s.io", "clusterroles", tuple(values["rbac"]["agentClusterRoles"]))
    ]


def test_the_agent_roles_policies_may_grant_by_default_are_the_ones_the_chart_creates() -> None:
    objs = render("defaults.yaml")
    created = {o["metadata"]["name"] for o in of_kind(objs, "ClusterRole")} - {"agency"}
    assert created == {"agency-agent-read-only", "agency-agent-namespace-writer"}
    assert set(values_of("defaults.yaml")["rbac"]["agentClusterRoles"]) == created


def test_example_agent_roles_never_touch_secrets_or_rbac_or_create_pods() -> None:
    roles = [o for o in of_kind(render("defaults.yaml"), "ClusterRole") if o["metadata"]["name"] != "agency"]
    for role in roles:
        name = role["metadata"]["name"]
        for group, resource, verb, _ in grants(role["rules"]):
            assert resource != "secrets", name
            assert group != "rbac.authorization.k8s.io", name
            creates_pods = resource in {"pods", "jobs", "serviceaccounts/token"} and verb == "create"
            assert not creates_pods, name


def test_read_only_agent_role_only_reads() -> None:
    role = next(
        o
        for o in of_kind(render("defaults.yaml"), "ClusterRole")
        if o["metadata"]["name"] == "agency-agent-read-only"
    )
    assert {verb for _, _, verb, _ in grants(role["rules"])} == {"get", "list", "watch"}


def test_pod_executor_cannot_mint_tokens_for_service_accounts() -> None:
    rules = operator_rules(render("defaults.yaml"))
    assert allowed(rules, "", "pods", "create")
    assert not allowed(rules, "", "serviceaccounts/token", "create")


def test_local_executor_mints_run_tokens_and_creates_no_pods() -> None:
    rules = operator_rules(render("local-executor.yaml"))
    assert allowed(rules, "", "serviceaccounts/token", "create")
    assert not allowed(rules, "", "pods", "create")
    assert not allowed(rules, "", "pods/log", "get")
    assert allowed(rules, "", "pods", "watch"), "run Pods are watched by the operator in either executor"


def test_operator_reads_secrets_one_by_one_but_never_lists_them() -> None:
    rules = operator_rules(render("defaults.yaml"))
    assert allowed(rules, "", "secrets", "get")
    assert not allowed(rules, "", "secrets", "list")
    assert not allowed(rules, "", "secrets", "watch")


def test_endpoints_are_readable_only_for_the_api_server_and_only_when_needed() -> None:
    rules = operator_rules(render("defaults.yaml"))
    assert allowed(rules, "", "endpoints", "get", "kubernetes")
    assert not allowed(rules, "", "endpoints", "get", "my-app")
    assert not allowed(operator_rules(render("local-executor.yaml")), "", "endpoints", "get", "kubernetes")


def test_namespaces_are_watched_only_when_a_list_of_namespaces_is_given() -> None:
    assert not allowed(operator_rules(render("defaults.yaml")), "", "namespaces", "watch")
    assert allowed(operator_rules(render("namespaces-otlp.yaml")), "", "namespaces", "watch")


#: Permissions `agency_operator.rbac` lists that the chart grants narrower, each for the reason given
#: (read from the operator's code: which verbs it really calls).
NARROWED = {
    ("", "serviceaccounts", "list"): "run ServiceAccounts are created, read and deleted by name only",
    ("", "serviceaccounts", "watch"): "run ServiceAccounts are created, read and deleted by name only",
    ("rbac.authorization.k8s.io", "roles", "list"): "run Roles are created, read and deleted by name only",
    ("rbac.authorization.k8s.io", "roles", "watch"): "run Roles are created, read and deleted by name only",
    ("rbac.authorization.k8s.io", "rolebindings", "watch"): "bindings are listed by label, never watched",
    ("", "pods", "delete"): "run Pods go with their run (garbage collection)",
    ("", "configmaps", "list"): "run files are created and read by name only",
    ("", "configmaps", "watch"): "run files are created and read by name only",
    ("", "configmaps", "delete"): "run files go with their run (garbage collection)",
    ("networking.k8s.io", "networkpolicies", "list"): "run NetworkPolicies are created and read by name",
    ("networking.k8s.io", "networkpolicies", "watch"): "run NetworkPolicies are created and read by name",
    ("networking.k8s.io", "networkpolicies", "delete"): "run NetworkPolicies go with their run",
    ("", "events", "patch"): "the operator creates Events (kopf's posting is off) and never patches them",
    ("events.k8s.io", "events", "create"): "the operator writes core v1 Events",
    ("events.k8s.io", "events", "patch"): "the operator writes core v1 Events",
    ("", "endpoints", "get"): "only the `kubernetes` Endpoints, and only without runs.apiServerCIDRs",
    ("", "namespaces", "list"): "kopf lists namespaces only when given a list of them (watchNamespaces)",
    ("", "namespaces", "watch"): "kopf watches namespaces only when given a list of them (watchNamespaces)",
    ("", "serviceaccounts/token", "create"): "TokenRequest is only needed by the local executor",
    ("", "pods", "create"): "run Pods are only created by the pod executor",
    ("", "pods/log", "get"): "only the pod executor reads a run Pod's log",
    ("authentication.k8s.io", "tokenreviews", "create"): "only the signal endpoint (signals.enabled) asks",
    ("authorization.k8s.io", "subjectaccessreviews", "create"): "only the signal endpoint asks",
}


@pytest.mark.parametrize("values_file", ["defaults.yaml", "local-executor.yaml", "namespaces-otlp.yaml"])
def test_chart_grants_what_the_operator_declares_it_uses_except_where_narrowed_on_purpose(
    values_file: str,
) -> None:
    values = values_of(values_file)
    declared = build_operator_cluster_role("agency", values["rbac"]["agentClusterRoles"])["rules"]
    chart = operator_rules(render(values_file))
    missing = {
        (group, resource, verb)
        for group, resource, verb, names in grants(declared)
        if not all(allowed(chart, group, resource, verb, name) for name in (names or (None,)))
    }
    unexplained = sorted(missing - NARROWED.keys())
    assert not unexplained, f"the operator declares permissions the chart does not grant: {unexplained}"


def test_without_rbac_the_chart_creates_no_roles_and_uses_the_named_service_account() -> None:
    objs = render("no-rbac.yaml")
    assert not of_kind(objs, "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount")
    pod = only(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "agency-operator-managed"


def test_binding_the_operator_role_to_the_default_service_account_is_refused(tmp_path: Path) -> None:
    proc = render_with(tmp_path, "serviceAccount:\n  create: false\n")
    assert proc.returncode != 0
    assert "serviceAccount.name is empty" in proc.stderr


def test_cluster_role_binding_grants_the_operator_role_to_the_operator_service_account() -> None:
    objs = render("defaults.yaml")
    binding = only(objs, "ClusterRoleBinding")
    account = only(objs, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "agency",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert (
        only(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        == account["metadata"]["name"]
    )


# ----- optional objects ----------------------------------------------------------------------------


def test_service_monitor_is_off_by_default() -> None:
    assert not of_kind(render("defaults.yaml"), "ServiceMonitor")


def test_service_monitor_scrapes_the_metrics_service_when_enabled() -> None:
    objs = render("servicemonitor.yaml")
    monitor = only(objs, "ServiceMonitor")
    metrics = next(s for s in of_kind(objs, "Service") if s["metadata"]["name"].endswith("-metrics"))
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == metrics["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"


def test_service_monitor_without_the_prometheus_operator_api_is_refused_naming_it() -> None:
    proc = helm("template", RELEASE, str(CHART), "-f", str(VALUES / "servicemonitor.yaml"))
    assert proc.returncode != 0
    assert "monitoring.coreos.com/v1" in proc.stderr
    assert "serviceMonitor.enabled" in proc.stderr


def test_default_policy_is_created_in_each_listed_namespace_with_the_values_spec() -> None:
    objs, values = render("namespaces-otlp.yaml"), values_of("namespaces-otlp.yaml")
    policies = of_kind(objs, "AgentPolicy")
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in policies} == {"team-default"}
    assert all(p["spec"] == values["defaultPolicy"]["spec"] for p in policies)
    assert not of_kind(render("defaults.yaml"), "AgentPolicy")


# ----- CRDs, values and schema ---------------------------------------------------------------------


def test_chart_crds_are_byte_identical_to_the_top_level_crds() -> None:
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    copy = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert source, "crds/ is empty: run `make crds`"
    assert copy.keys() == source.keys(), "charts/agency/crds/ is stale: cp crds/*.yaml charts/agency/crds/"
    stale = sorted(name for name in source if copy[name] != source[name])
    assert not stale, f"charts/agency/crds/ differs from crds/ in {stale}: cp crds/*.yaml charts/agency/crds/"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("executor: kubelet\n", ["/executor", "'pod'", "'local'"]),
        ("replicas: 2\n", ["replicas", "not allowed"]),
        ("image:\n  repository: ''\n", ["/image/repository"]),
        ("metrics:\n  port: 70000\n", ["/metrics/port", "65,535"]),
        ("runs:\n  tokenTtlSeconds: 60\n", ["/runs/tokenTtlSeconds", "600"]),
        ("reconcile:\n  workers: 0\n", ["/reconcile/workers", "1"]),
        ("watchNamespaces: [Team_A]\n", ["/watchNamespaces/0"]),
        ("otlp:\n  endpoint: collector:4318\n", ["/otlp/endpoint"]),
        ("podSecurityContext:\n  runAsUser: 0\n", ["/podSecurityContext/runAsUser"]),
        ("image:\n  pullPolicy: Sometimes\n", ["/image/pullPolicy", "'IfNotPresent'"]),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_the_value(
    tmp_path: Path, values: str, expected: list[str]
) -> None:
    proc = render_with(tmp_path, values)
    assert proc.returncode != 0, f"accepted: {values!r}"
    assert "values don't meet the specifications of the schema" in proc.stderr
    for part in expected:
        assert part in proc.stderr, proc.stderr


def test_granting_runs_cluster_admin_is_refused_with_the_reason(tmp_path: Path) -> None:
    proc = render_with(tmp_path, "rbac:\n  agentClusterRoles: [view, cluster-admin]\n")
    assert proc.returncode != 0
    assert 'rbac.agentClusterRoles names "cluster-admin"' in proc.stderr


def _value_lines() -> Iterator[tuple[str, bool]]:
    """(dotted path, preceded by a comment) for every key in values.yaml."""
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in (CHART / "values.yaml").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if match:
            indent = len(match[1])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match[2]))
            yield ".".join(k for _, k in stack), previous.lstrip().startswith("#")
        if line.strip():
            previous = line


def _schema_leaves(schema: Manifest, prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in sub:
            yield from _schema_leaves(sub, path + ".")
        else:
            yield path


def test_every_value_has_a_comment_and_a_schema_entry_with_a_description() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    commented = dict(_value_lines())
    leaves = set(_schema_leaves(schema)) - {"global"}
    assert leaves <= commented.keys(), (
        f"in the schema but not in values.yaml: {sorted(leaves - commented.keys())}"
    )
    undocumented = sorted(path for path in leaves if not commented[path])
    assert not undocumented, f"values without a comment above them: {undocumented}"
    top_level = {p.split(".")[0] for p in commented}
    assert top_level <= schema["properties"].keys()
