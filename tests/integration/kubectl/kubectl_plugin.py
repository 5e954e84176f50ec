"""Helpers of the `kubectl agency` tests: the plugin run as a user runs it, people with tokens, statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agency_testbed.cluster import Testbed

VENV_BIN = Path(sys.executable).parent
ADMIN = "agency-testbed-admin"  # the user name of the testbed's admin client certificate


@dataclass
class Plugin:
    """Runs `kubectl agency ARGS` through the testbed's kubectl, which finds kubectl-agency on PATH."""

    testbed: Testbed

    def env(self, kubeconfig: Path | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The testbed's environment (KUBECONFIG as admin), the venv's bin (kubectl-agency) first on PATH."""
        full_env = self.testbed.env()
        full_env["PATH"] = f"{VENV_BIN}:{full_env['PATH']}"
        if kubeconfig is not None:
            full_env["KUBECONFIG"] = str(kubeconfig)
        full_env.update(env or {})
        return full_env

    def argv(self, *args: str) -> list[str]:
        return [str(self.testbed.bin_dir / "kubectl"), "agency", *args]

    def __call__(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            env=self.env(kubeconfig, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def token_kubeconfig(testbed: Testbed, namespace: str, account: str, folder: Path) -> Path:
    """A kubeconfig logging in as ServiceAccount `account` with a bearer token, default namespace set."""
    token = testbed.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tb",
                "cluster": {
                    "server": testbed.server,
                    "certificate-authority": str(testbed.folder / "pki" / "ca.crt"),
                },
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": account, "context": {"cluster": "tb", "user": account, "namespace": namespace}}
        ],
        "current-context": account,
    }
    path = folder / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def person(testbed: Testbed, namespace: str, name: str, verbs: list[str], folder: Path) -> Path:
    """A ServiceAccount standing in for a person allowed `verbs` on agentruns; its token kubeconfig."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [{"apiGroups": ["agency.dev"], "resources": ["agentruns"], "verbs": verbs}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]
    testbed.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    return token_kubeconfig(testbed, namespace, name, folder)


def set_status(testbed: Testbed, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Write a run's status as the operator and the runtime would (through the status subresource)."""
    with testbed.http() as http:
        response = http.patch(
            f"/apis/agency.dev/v1alpha1/namespaces/{namespace}/agentruns/{name}/status",
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    response.raise_for_status()


def agent_run(testbed: Testbed, namespace: str, name: str) -> dict[str, Any]:
    out = testbed.kubectl("get", "agentrun", name, "-n", namespace, "-o", "json").stdout
    body: dict[str, Any] = json.loads(out)
    return body
