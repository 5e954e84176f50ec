"""The Pod that runs one AgentRun.

Pod, not Job: a run is exactly one attempt. A Job's purpose is retrying and replacing pods, and a
replacement would repeat an agent's tool calls (side effects in the world) under a controller the
operator does not decide for; `backoffLimit: 0` would leave a Job that adds a second owner, a second
status to mirror and a second TTL mechanism without adding anything. A bare Pod with
`restartPolicy: Never`, named after the run, gives the operator one object whose phase is the run's,
makes a duplicate impossible (a second create is a 409), and the operator's own TTL cleans it with the
run. Continuing an interrupted run is the runtime's job (its journal), not Kubernetes' restarts.

Security: restricted Pod Security profile (non-root, read-only root filesystem, no privilege
escalation, no capabilities, RuntimeDefault seccomp), no automounted token; the run's token is
projected with the policy's audience and lifetime; each model key comes from a `secretKeyRef`, never as
a literal value in the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agency_operator import names
from agency_operator.credentials import key_variables
from agency_operator.environment import SIGNAL_CA, SIGNAL_TOKEN, Placement, signal_env
from agency_operator.kube import JsonDict
from agency_operator.settings import Settings
from agency_runtime.api.agent import Agent
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.contract import RunEnv

RUN_FILE_DIR = Path("/etc/agency/run")
TOKEN_DIR = Path("/var/run/secrets/agency.dev/serviceaccount")
NON_ROOT_UID = 65532
CONTAINER = "runtime"
#: Seconds the Pod may outlive the run's wall-clock budget before Kubernetes stops it.
DEADLINE_GRACE_SECONDS = 60


def pod_placement(settings: Settings) -> Placement:
    """Where the Pod's volumes put the run's inputs."""
    return Placement(
        run_file=RUN_FILE_DIR / names.RUN_FILE_KEY,
        api_server=settings.pod_api_server,
        ca_file=TOKEN_DIR / "ca.crt",
        token_file=TOKEN_DIR / "token",
        journal=settings.pod_journal,
    )


def _token_projection(policy: AgentPolicy, settings: Settings, run_name: str) -> JsonDict:
    """The run's token (policy audience and lifetime), the cluster CA and, when runs may publish signals,
    a second token for the signal endpoint's audience (so neither token is accepted where the other is)
    with the CA bundle that endpoint's certificate chains to, when the operator was given one."""
    identity = policy.spec.identity
    source: JsonDict = {"path": "token", "expirationSeconds": identity.token_expiration_seconds}
    if identity.token_audience:
        source["audience"] = identity.token_audience
    sources: list[JsonDict] = [
        {"serviceAccountToken": source},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    ]
    if settings.signals_url_for_runs() is not None:
        signal_source: JsonDict = {
            "path": SIGNAL_TOKEN,
            "audience": settings.signals_audience,
            "expirationSeconds": identity.token_expiration_seconds,
        }
        sources.append({"serviceAccountToken": signal_source})
        if settings.signals_ca_file is not None:  # optional: a run file made before the CA was set has none
            ca_item = {"key": names.SIGNALS_CA_KEY, "path": SIGNAL_CA}
            run_file = names.run_file_config_map(run_name)
            sources.append({"configMap": {"name": run_file, "items": [ca_item], "optional": True}})
    return {"name": "token", "projected": {"defaultMode": 0o440, "sources": sources}}


def build_env(env: RunEnv, agent: Agent, extra: Mapping[str, str] | None = None) -> list[JsonDict]:
    """The container env: RunEnv's variables, and the model key by reference only.

    No AGENCY_RESULT_FILE: the runtime's final result is the last line it prints, which the operator
    reads from the termination message (a failed container's log tail) or the Pod's log.
    """
    variables = {**env.to_env(), **(extra or {})}
    out: list[JsonDict] = [{"name": k, "value": v} for k, v in sorted(variables.items())]
    for variable, _where, ref in key_variables(agent):
        out.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return out


def build_pod(
    run: Mapping[str, Any],
    agent: Agent,
    policy: AgentPolicy,
    env: RunEnv,
    settings: Settings,
    attempt: int = 0,
) -> JsonDict:
    """The run's Pod, owned by the run, with the restricted security context and the run's own identity."""
    meta = run["metadata"]
    overrides = agent.spec.runtime
    image = (overrides.image if overrides and overrides.image else None) or settings.runtime_image
    pull = (overrides.image_pull_policy if overrides and overrides.image_pull_policy else None) or (
        settings.runtime_image_pull_policy
    )
    container: JsonDict = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": pull,
        "command": list(settings.runtime_command),
        "env": build_env(env, agent, signal_env(settings, TOKEN_DIR / SIGNAL_TOKEN, TOKEN_DIR / SIGNAL_CA)),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "run-file", "mountPath": str(RUN_FILE_DIR), "readOnly": True},
            {"name": "token", "mountPath": str(TOKEN_DIR), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir: the only writable path
        ],
    }
    if overrides and overrides.resources:
        container["resources"] = overrides.resources.to_k8s()
    spec: JsonDict = {
        "restartPolicy": "Never",
        "serviceAccountName": names.service_account(meta["name"]),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "run-file",
                "configMap": {
                    "name": names.run_file_config_map(meta["name"]),
                    "items": [{"key": names.RUN_FILE_KEY, "path": names.RUN_FILE_KEY}],
                },
            },
            _token_projection(policy, settings, meta["name"]),
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
    }
    if env.budget.max_wall_seconds is not None:
        spec["activeDeadlineSeconds"] = env.budget.max_wall_seconds + DEADLINE_GRACE_SECONDS
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.pod(meta["name"], attempt),
            "namespace": meta["namespace"],
            "labels": {**names.run_labels(run, "runtime"), names.ATTEMPT_LABEL: str(attempt)},
            "ownerReferences": [names.owner_reference(run)],
        },
        "spec": spec,
    }
