"""A run's identity on the testbed, made the way the operator makes it: an AgentRun, a ServiceAccount named
`agency-run-<run>`, the Role `agency_operator.identity.build_role` generates (its own objects, status and
journal), a RoleBinding and a bound token: tests talk to the API server as the run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agency_operator.identity import build_role
from agency_runtime.contract import RunEnv
from agency_runtime.kube import KubeClient, RunObject
from agency_testbed.cluster import Testbed

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class RunIdentity:
    """An AgentRun and a token that is the run's own."""

    run: RunObject
    service_account: str
    token_file: Path
    server: str
    ca_file: Path
    clients: list[KubeClient] = field(default_factory=list, compare=False, repr=False)

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.run.namespace}:{self.service_account}"

    def client(self) -> KubeClient:
        """A client logged in as the run (closed by `close`)."""
        client = KubeClient.connect(self.server, token_file=self.token_file, ca_file=self.ca_file)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def env(self, run_file: Path, journal: str = "kubernetes") -> RunEnv:
        return RunEnv(
            run_name=self.run.name,
            namespace=self.run.namespace,
            run_uid=self.run.uid,
            agent_name="tester",
            run_file=run_file,
            api_server=self.server,
            ca_file=self.ca_file,
            token_file=self.token_file,
            journal=journal,
        )


def apply(testbed: Testbed, body: JsonDict) -> JsonDict:
    out = testbed.kubectl("apply", "--server-side", "-o", "json", "-f", "-", stdin=json.dumps(body)).stdout
    result: JsonDict = json.loads(out)
    return result


def create_token(testbed: Testbed, namespace: str, service_account: str, folder: Path) -> Path:
    """A TokenRequest for the ServiceAccount, written to a file as a projected token would be."""
    token = testbed.kubectl("create", "token", service_account, "-n", namespace, "--duration=1h").stdout
    path = folder / f"{namespace}-{service_account}.token"
    path.write_text(token.strip())
    return path


def create_run(
    testbed: Testbed,
    namespace: str,
    name: str,
    folder: Path,
    *,
    extra_rules: Sequence[JsonDict] = (),
) -> RunIdentity:
    """The AgentRun `name` and its identity: the operator's generated Role, plus `extra_rules`."""
    agent_run = apply(
        testbed,
        {
            "apiVersion": "agency.dev/v1alpha1",
            "kind": "AgentRun",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"agentRef": {"name": "tester"}, "input": "do the task"},
        },
    )
    uid = agent_run["metadata"]["uid"]
    service_account = f"agency-run-{name}"
    apply(
        testbed,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace},
        },
    )
    role = build_role(agent_run)
    role["metadata"] = {"name": f"agency-run-{name}", "namespace": namespace}
    role["rules"] = [*role["rules"], *extra_rules]
    apply(testbed, role)
    bind(
        testbed,
        namespace,
        "Role",
        role["metadata"]["name"],
        service_account,
        binding=role["metadata"]["name"],
    )
    return RunIdentity(
        run=RunObject(namespace, name, uid),
        service_account=service_account,
        token_file=create_token(testbed, namespace, service_account, folder),
        server=testbed.server,
        ca_file=testbed.folder / "pki" / "ca.crt",
    )


def bind(
    testbed: Testbed, namespace: str, kind: str, role: str, service_account: str, *, binding: str
) -> None:
    apply(
        testbed,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": binding, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        },
    )


def create_person(
    testbed: Testbed, namespace: str, name: str, folder: Path, *, verbs: Sequence[str]
) -> tuple[str, str]:
    """A ServiceAccount standing in for a person, allowed `verbs` on agentruns; returns (user name, token)."""
    apply(
        testbed,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
    )
    apply(
        testbed,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": f"{name}-agentruns", "namespace": namespace},
            "rules": [{"apiGroups": ["agency.dev"], "resources": ["agentruns"], "verbs": list(verbs)}],
        },
    )
    bind(testbed, namespace, "Role", f"{name}-agentruns", name, binding=f"{name}-agentruns")
    token = create_token(testbed, namespace, name, folder).read_text()
    return f"system:serviceaccount:{namespace}:{name}", token
