"""The kind path of `make demo`: where Docker and kind are installed, the demo runs on a kind cluster.

`choose_target` decides: kind when `docker` (with an engine that answers) and `kind` are both on PATH,
the loopback testbed otherwise; `AGENCY_DEMO_TARGET=kind|testbed` forces one. On kind the demo

1. builds the image from the repository's Dockerfile (`docker build -t agency-demo:local .`),
2. creates the cluster `agency-demo` (kubeconfig in the demo's temp folder, never in ~/.kube),
3. loads the image into its node (`kind load docker-image`, so nothing is pulled: `pullPolicy: Never`),
4. installs the chart with the `pod` executor (`kind_values`), watching the demo namespace,

and serves Jaeger's OTLP receiver, the scripted model and the stand-in services on the Docker network's
gateway address, which the kind node's Pods reach and nothing outside this host does. The cluster is
deleted at the end, also when a step fails.

This path cannot run where Agency is developed (no Docker engine there); what is checked there: the
choice (`tests/unit/demo/`), the chart values rendered by the real `helm template`, and the teardown
order with stand-in `docker` and `kind` commands (`tests/e2e/test_demo_kind.py`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

CLUSTER = "agency-demo"
IMAGE_REPOSITORY, IMAGE_TAG = "agency-demo", "local"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
RELEASE, RELEASE_NAMESPACE = "agency", "agency-system"
TARGET_VARIABLE = "AGENCY_DEMO_TARGET"
JsonDict = dict[str, Any]


class Target(StrEnum):
    KIND = "kind"
    TESTBED = "testbed"


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what to install or change."""


def engine_answers(docker: str) -> bool:
    """True when the Docker CLI reaches an engine (a CLI alone, as on these machines, is not enough)."""
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def choose_target(
    env: Mapping[str, str],
    which: Callable[[str], str | None] = shutil.which,
    answers: Callable[[str], bool] = engine_answers,
) -> Target:
    """kind when docker (with an engine) and kind are there, else the testbed; the variable forces one."""
    wanted = env.get(TARGET_VARIABLE, "").strip().lower()
    if wanted not in ("", *Target):
        raise DemoError(f"{TARGET_VARIABLE}={wanted!r}: use kind, testbed, or leave it unset to choose")
    if wanted == Target.TESTBED:
        return Target.TESTBED
    docker, kind = which("docker"), which("kind")
    missing = [name for name, path in (("docker", docker), ("kind", kind)) if path is None]
    engine = docker is not None and answers(docker)
    if not missing and engine:
        return Target.KIND
    if wanted == Target.KIND:
        why = f"{' and '.join(missing)} not on PATH" if missing else "the Docker engine does not answer"
        raise DemoError(f"{TARGET_VARIABLE}=kind, but {why}; unset it to run the demo on the local testbed")
    return Target.TESTBED


def kind_values(image_repository: str, image_tag: str, otlp_endpoint: str, namespace: str) -> JsonDict:
    """Chart values for the demo: the locally built image (never pulled), pod executor, one namespace."""
    return {
        "image": {"repository": image_repository, "tag": image_tag, "pullPolicy": "Never"},
        "runtime": {"image": {"pullPolicy": "Never"}},
        "executor": "pod",
        "watchNamespaces": [namespace],
        "otlp": {"endpoint": otlp_endpoint},
    }


def docker_gateway(docker: str, network: str = "kind") -> str:
    """The IPv4 gateway of the Docker network kind's nodes are on: this host, as the nodes see it."""
    done = _run([docker, "network", "inspect", network, "--format", "{{json .IPAM.Config}}"])
    for entry in json.loads(done.stdout or "[]") or []:
        gateway = str((entry or {}).get("Gateway", ""))
        try:
            if ipaddress.ip_address(gateway).version == 4:
                return gateway
        except ValueError:
            continue
    raise DemoError(f"the Docker network {network!r} has no IPv4 gateway: {done.stdout.strip()!r}")


def build_image(docker: str, context: Path, image: str = IMAGE) -> None:
    _run([docker, "build", "-t", image, str(context)], timeout=1800)


@dataclass
class KindCluster:
    """A kind cluster the demo made; `kubectl` and `env` as the testbed's, so the demo drives both alike."""

    kind: str
    name: str
    kubeconfig: Path
    bin_dir: Path

    @classmethod
    def create(cls, kind: str, name: str, folder: Path, bin_dir: Path) -> KindCluster:
        kubeconfig = folder / "kind-kubeconfig"
        cluster = cls(kind=kind, name=name, kubeconfig=kubeconfig, bin_dir=bin_dir)
        _run([kind, "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", "180s"])
        return cluster

    def delete(self) -> None:
        _run([self.kind, "delete", "cluster", "--name", self.name], check=False)

    def load_image(self, image: str) -> None:
        _run([self.kind, "load", "docker-image", image, "--name", self.name], timeout=600)

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}",
        )

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return _run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            stdin=stdin,
            check=check,
            timeout=timeout,
        )

    def helm_install(self, chart: Path, values: JsonDict, folder: Path) -> None:
        """Install the chart and wait until the operator's Deployment is available."""
        values_file = folder / "kind-values.json"  # JSON is YAML: helm reads it as a values file
        values_file.write_text(json.dumps(values, indent=2))
        _run(
            [
                str(self.bin_dir / "helm"),
                "install",
                RELEASE,
                str(chart),
                "--kubeconfig",
                str(self.kubeconfig),
                "--namespace",
                RELEASE_NAMESPACE,
                "--create-namespace",
                "-f",
                str(values_file),
                "--wait",
                "--timeout",
                "5m",
            ],
            timeout=400,
        )

    def operator_log(self, lines: int = 40) -> str:
        out = self.kubectl(
            "logs", f"deployment/{RELEASE}", "-n", RELEASE_NAMESPACE, f"--tail={lines}", check=False
        )
        return out.stdout + out.stderr


def _run(
    argv: Sequence[str], *, stdin: str | None = None, check: bool = True, timeout: float = 600.0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        command = " ".join([Path(argv[0]).name, *argv[1:]])
        raise DemoError(f"`{command}` exited {done.returncode}:\n{tail}")
    return done
