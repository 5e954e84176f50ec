"""`make demo` picks where to run: kind where Docker and kind are installed, the testbed otherwise."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agency_operator.settings import ExecutorKind, Settings
from agency_testbed.build import bin_dir
from agency_testbed.demo_kind import IMAGE, DemoError, Target, choose_target, kind_values

REPO = Path(__file__).resolve().parents[3]


def on_path(*names: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in names else None


def engine(up: bool) -> Callable[[str], bool]:
    return lambda _docker: up


def test_docker_with_a_running_engine_and_kind_choose_kind() -> None:
    assert choose_target({}, on_path("docker", "kind"), engine(True)) is Target.KIND


@pytest.mark.parametrize(
    ("tools", "up"),
    [(("docker",), True), (("kind",), False), (("docker", "kind"), False), ((), False)],
    ids=["no-kind", "no-docker", "engine-down", "neither"],
)
def test_without_docker_kind_or_an_engine_the_demo_runs_on_the_testbed(
    tools: tuple[str, ...], up: bool
) -> None:
    assert choose_target({}, on_path(*tools), engine(up)) is Target.TESTBED


def test_the_variable_keeps_the_demo_on_the_testbed_even_with_docker_and_kind() -> None:
    env = {"AGENCY_DEMO_TARGET": "testbed"}
    assert choose_target(env, on_path("docker", "kind"), engine(True)) is Target.TESTBED


def test_asking_for_kind_without_kind_says_what_is_missing() -> None:
    with pytest.raises(DemoError, match=r"kind not on PATH"):
        choose_target({"AGENCY_DEMO_TARGET": "kind"}, on_path("docker"), engine(True))


def test_asking_for_kind_with_a_stopped_engine_says_so() -> None:
    with pytest.raises(DemoError, match=r"Docker engine does not answer"):
        choose_target({"AGENCY_DEMO_TARGET": "kind"}, on_path("docker", "kind"), engine(False))


def test_an_unknown_target_is_refused_naming_the_choices() -> None:
    with pytest.raises(DemoError, match=r"use kind, testbed"):
        choose_target({"AGENCY_DEMO_TARGET": "minikube"}, on_path("docker", "kind"), engine(True))


def test_the_kind_values_install_the_local_image_with_the_pod_executor(tmp_path: Path) -> None:
    values = kind_values("agency-demo", "local", "http://192.0.2.1:4318", "cold-chain")
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    helm = bin_dir() / "helm"
    if not helm.exists():
        pytest.fail(f"{helm} is missing: run `make testbed-build`")
    proc = subprocess.run(
        [
            str(helm),
            "template",
            "agency",
            str(REPO / "charts" / "agency"),
            "-n",
            "agency-system",
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["imagePullPolicy"] == "Never"  # loaded into the kind node, never pulled
    settings = Settings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e})
    assert settings.executor is ExecutorKind.POD
    assert settings.runtime_image == IMAGE
    assert settings.runtime_image_pull_policy == "Never"
    assert settings.otlp_endpoint == "http://192.0.2.1:4318"
    assert settings.namespaces == ("cold-chain",)
