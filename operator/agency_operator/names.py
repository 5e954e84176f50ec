"""Names and labels of the objects the operator makes for a run, in one place so every module agrees.

Every child of a run is named from the run (deterministic names are what makes "create if absent"
idempotent and a restarted operator unable to duplicate anything) and labelled with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agency_runtime.api.meta import API_VERSION

GROUP_PREFIX = "agency.dev"
RUN_LABEL = f"{GROUP_PREFIX}/run"
RUN_UID_LABEL = f"{GROUP_PREFIX}/run-uid"
RUN_NAMESPACE_LABEL = f"{GROUP_PREFIX}/run-namespace"
AGENT_LABEL = f"{GROUP_PREFIX}/agent"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "agency-operator"
TRACEPARENT_ANNOTATION = f"{GROUP_PREFIX}/traceparent"
RUN_FILE_KEY = "run.json"
#: The signal endpoint's CA bundle in the run file ConfigMap, when the operator was given one.
SIGNALS_CA_KEY = "signals-ca.crt"


def service_account(run: str) -> str:
    """The run's ServiceAccount, `agency-run-<run>`: the `run-journals` admission policy recognises a run's
    requests by this prefix of their user name (system:serviceaccount:<namespace>:agency-run-<run>)."""
    return f"agency-run-{run}"


ATTEMPT_LABEL = f"{GROUP_PREFIX}/attempt"


def pod(run: str, attempt: int = 0) -> str:
    """The run's Pod: named as the run (attempt 0), so a second create is a conflict, not a duplicate.

    A run that stopped to wait for an approval continues in a new Pod once decided: `<run>-<attempt>`.
    """
    return run if attempt == 0 else f"{run}-{attempt}"


def role(run: str) -> str:
    """The generated Role letting the run touch only its own AgentRun and run file."""
    return f"agency-run-{run}"


def role_binding(run: str, cluster_role: str) -> str:
    """A binding of the run's ServiceAccount to one ClusterRole its policy allows."""
    return f"agency-run-{run}-{cluster_role}"[:253]


def self_binding(run: str) -> str:
    return f"agency-run-{run}"


def run_file_config_map(run: str) -> str:
    return f"agency-run-{run}"


def network_policy(run: str) -> str:
    return f"agency-run-{run}"


def run_labels(run: Mapping[str, Any], component: str) -> dict[str, str]:
    """Labels of every child of a run: who made it, for which run and agent, and what it is."""
    meta = run["metadata"]
    return {
        MANAGED_BY: OPERATOR,
        COMPONENT_LABEL: component,
        RUN_LABEL: meta["name"],
        RUN_UID_LABEL: meta["uid"],
        AGENT_LABEL: run["spec"]["agentRef"]["name"],
    }


def owner_reference(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run as controller owner: when the run is deleted, the garbage collector deletes the child."""
    meta = run["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentRun",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
