"""The run file: what the runtime is asked to do, written once when the run starts, never holding secrets.

In a Pod it is a ConfigMap owned by the run and mounted read-only; a local process gets the same JSON
in a file. The Agent spec is copied at start, so editing the Agent later does not change a running run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agency_operator import names
from agency_operator.kube import JsonDict
from agency_runtime.api.agent import Agent
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.api.run import AgentRun


def build_run_file(run: AgentRun, agent: Agent, policy: AgentPolicy | None) -> JsonDict:
    """`{"agent", "policy", "input", "trigger", "parentRun"}`, camelCase, as the runtime reads it."""
    return {
        "agent": agent.spec.to_k8s(),
        "policy": policy.spec.to_k8s() if policy is not None else None,
        "input": run.spec.input,
        "trigger": run.spec.trigger.to_k8s() if run.spec.trigger is not None else None,
        "parentRun": run.spec.parent_run_ref.name if run.spec.parent_run_ref is not None else None,
    }


def run_file_text(content: JsonDict) -> str:
    return json.dumps(content, indent=2, sort_keys=True)


def build_run_file_config_map(
    run_body: Mapping[str, Any], content: JsonDict, signals_ca: str | None = None
) -> JsonDict:
    """The run file as a ConfigMap owned by the run; immutable, since a run's inputs never change. With
    the CA bundle the run trusts for the signal endpoint beside it, when there is one."""
    meta = run_body["metadata"]
    data = {names.RUN_FILE_KEY: run_file_text(content)}
    if signals_ca is not None:
        data[names.SIGNALS_CA_KEY] = signals_ca
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.run_file_config_map(meta["name"]),
            "namespace": meta["namespace"],
            "labels": names.run_labels(run_body, "run-file"),
            "ownerReferences": [names.owner_reference(run_body)],
        },
        "immutable": True,
        "data": data,
    }
