"""The plugin reads kubeconfig as kubectl does: precedence, merging, overrides, and refusals that say why."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from agency_runtime.kubectl.errors import KubeconfigError
from agency_runtime.kubectl.kubeconfig import kubeconfig_paths, load


def _config(
    server: str = "https://api.example:6443",
    user: dict[str, Any] | None = None,
    context: str = "main",
    namespace: str | None = None,
    cluster: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx: dict[str, Any] = {"cluster": f"{context}-cluster", "user": f"{context}-user"}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"{context}-cluster", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": f"{context}-user", "user": user if user is not None else {"token": "t0k"}}],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_explicit_kubeconfig_wins_over_the_environment_and_home(tmp_path: Path) -> None:
    env = {"KUBECONFIG": f"{tmp_path}/a:{tmp_path}/b", "HOME": str(tmp_path)}
    assert kubeconfig_paths("/x/config", env) == [Path("/x/config")]
    assert kubeconfig_paths(None, env) == [tmp_path / "a", tmp_path / "b"]
    assert kubeconfig_paths(None, {"HOME": str(tmp_path)}) == [tmp_path / ".kube" / "config"]


def test_first_file_in_kubeconfig_list_decides_the_current_context_and_entries(tmp_path: Path) -> None:
    first = _write(tmp_path / "a", _config("https://first:6443", context="one", namespace="team-a"))
    second = _write(tmp_path / "b", _config("https://second:6443", context="two"))
    conn = load(env={"KUBECONFIG": f"{first}:{second}"})
    assert (conn.server, conn.context, conn.namespace, conn.token) == (
        "https://first:6443",
        "one",
        "team-a",
        "t0k",
    )
    other = load(env={"KUBECONFIG": f"{first}:{second}"}, context="two", namespace="ops")
    assert (other.server, other.namespace) == ("https://second:6443", "ops")


def test_namespace_defaults_to_default_when_the_context_names_none(tmp_path: Path) -> None:
    conn = load(str(_write(tmp_path / "c", _config())))
    assert conn.namespace == "default"


def test_relative_certificate_paths_are_read_from_the_kubeconfig_folder(tmp_path: Path) -> None:
    folder = tmp_path / "kube"
    folder.mkdir()
    config = _config(
        user={"client-certificate": "admin.crt", "client-key": "/abs/admin.key"},
        cluster={"certificate-authority": "ca.crt"},
    )
    conn = load(str(_write(folder / "config", config)))
    assert conn.ca_file == str(folder / "ca.crt")
    assert conn.client_cert_file == str(folder / "admin.crt")
    assert conn.client_key_file == "/abs/admin.key"


def test_inline_certificate_data_is_decoded_from_base64(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    data = base64.b64encode(pem.encode()).decode()
    config = _config(
        user={"client-certificate-data": data, "client-key-data": data},
        cluster={"certificate-authority-data": data},
    )
    conn = load(str(_write(tmp_path / "c", config)))
    assert (conn.ca_data, conn.client_cert_data, conn.client_key_data) == (pem, pem, pem)


def test_token_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    conn = load(str(_write(tmp_path / "c", _config(user={"tokenFile": "token"}))))
    assert conn.token == "from-file"


def test_exec_plugin_user_is_refused_naming_what_is_supported(tmp_path: Path) -> None:
    config = _config(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}})
    with pytest.raises(KubeconfigError, match=r"exec plugin \(aws\).*client certificates, bearer tokens"):
        load(str(_write(tmp_path / "c", config)))


def test_unknown_context_names_the_files_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "c", _config())
    with pytest.raises(KubeconfigError, match=rf"context 'nope' is not defined in {path}"):
        load(str(path), context="nope")


def test_missing_kubeconfig_says_to_set_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"no kubeconfig found .* set KUBECONFIG or pass --kubeconfig"):
        load(env={"HOME": str(tmp_path)})
