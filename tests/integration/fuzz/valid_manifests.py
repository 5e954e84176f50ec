"""Valid manifests of the four kinds, with nearly every field set: the starting points the fuzz mutates.

Pure builders. Each sets as many fields as one valid object can hold, so that a mutation of "any field
present" reaches nearly every field of the schema. The fuzz checks that each parses with its API model
before mutating it, and the API server accepts them as they are (the objects the fuzz creates beside the
fuzzed ones, an Agent of a policy or a run of an Agent, are these), so they stay valid as the API changes.
"""

from __future__ import annotations

import json
from typing import Any

from agency_runtime.api.meta import API_VERSION

JsonDict = dict[str, Any]

#: The admin's user name on the testbed: approval decisions are recorded under the creator's name.
ADMIN = "agency-testbed-admin"
#: Replaced by the object's own name when it is created (for rules that compare a field with the name).
SELF = "$SELF"
#: Label that ties the Agents of a policy fuzz to their policy (agentSelector.matchLabels).
POLICY_LABEL = "fuzz.agency.dev/policy"
SECRET = {"name": "model-key", "key": "apiKey"}
API_BASE = "http://127.0.0.1:9/v1"


def _object(kind: str, namespace: str, spec: JsonDict, labels: dict[str, str] | None = None) -> JsonDict:
    metadata: JsonDict = {"name": SELF, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def agent(namespace: str, policy: str = "default") -> JsonDict:
    return _object(
        "Agent",
        namespace,
        {
            "description": "Watches cold-chain shipments and opens tickets.",
            "model": {
                "name": "openai/triage",
                "apiBase": API_BASE,
                "credentialsSecretRef": dict(SECRET),
                "parameters": {
                    "temperature": 0.2,
                    "topP": 0.9,
                    "maxOutputTokens": 512,
                    "seed": 7,
                    "reasoningEffort": "low",
                    "timeoutSeconds": 60,
                },
                "pricing": {"inputPerMillionTokensUSD": 0.15, "outputPerMillionTokensUSD": 0.6},
                "fallbacks": [
                    {"name": "openai/backup", "apiBase": API_BASE, "credentialsSecretRef": dict(SECRET)}
                ],
            },
            "instructions": "Check each shipment's temperature log; open a ticket when it is out of range.",
            "tools": [
                {
                    "name": "kube",
                    "builtin": "kubernetes",
                    "settings": {"namespace": namespace},
                    "risk": "read-only",
                },
                {
                    "name": "lookup",
                    "description": "Looks up the readings of one lot.",
                    "http": {
                        "url": "https://sensors.example.com/v1/readings",
                        "method": "POST",
                        "headers": [
                            {"name": "X-Tenant", "value": "acme"},
                            {"name": "Authorization", "valueFrom": {"secretKeyRef": dict(SECRET)}},
                        ],
                        "inputSchema": {"type": "object", "properties": {"lot": {"type": "string"}}},
                        "timeoutSeconds": 10,
                    },
                    "risk": "idempotent",
                },
                {"name": "ask-planner", "agentRef": {"name": "planner"}},
            ],
            "skills": [
                {
                    "name": "cold-chain",
                    "description": "Decides whether a shipment left its temperature range.",
                    "inputSchema": {"type": "object"},
                }
            ],
            "memory": {"scope": "Agent", "maxEntries": 50},
            "policyRef": {"name": policy},
            "runtime": {
                "image": "ghcr.io/example/agency-runtime:1.0",
                "imagePullPolicy": "IfNotPresent",
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": 1, "memory": "256Mi"},
                },
            },
            "judge": {
                "model": {"name": "openai/judge", "apiBase": API_BASE, "credentialsSecretRef": dict(SECRET)},
                "rubric": "The ticket names the lot and the reading.",
            },
            "guardrails": [{"name": "health", "url": "https://health.example.com/ok", "tools": ["lookup"]}],
        },
        labels={POLICY_LABEL: policy},
    )


def policy(namespace: str) -> JsonDict:
    """An AgentPolicy selecting the Agents labelled with its own name."""
    return _object(
        "AgentPolicy",
        namespace,
        {
            "agentSelector": {
                "matchLabels": {POLICY_LABEL: SELF},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["banned"]}],
            },
            "models": {"allowed": ["openai/*"]},
            "tools": {
                "allowed": ["*"],
                "denied": ["shell"],
                "rules": [
                    {
                        "name": "kube",
                        "risk": "read-only",
                        "autonomy": {"level": "act", "rollback": "Required"},
                    }
                ],
            },
            "autonomy": {
                "readOnly": {"level": "act"},
                "idempotent": {"level": "propose"},
                "destructive": {"level": "notify"},
            },
            "approvals": {
                "approvers": [
                    {"kind": "User", "name": "alice"},
                    {"kind": "ServiceAccount", "name": "approver", "namespace": namespace},
                ],
                "timeoutSeconds": 3600,
            },
            "identity": {
                "clusterRoles": [{"name": "view", "namespaces": [namespace]}],
                "tokenAudience": "agency.dev/runs",
                "tokenExpirationSeconds": 3600,
            },
            "network": {
                "egress": [
                    {
                        "hosts": ["sensors.example.com"],
                        "cidrs": ["10.20.0.0/16"],
                        "ports": [{"port": 443, "protocol": "TCP"}],
                    }
                ]
            },
            "budgets": {
                "perRun": {
                    "maxTokens": 10000,
                    "maxCostUSD": 1.0,
                    "maxSteps": 20,
                    "maxWallSeconds": 600,
                    "compactAtTokens": 2000,
                },
                "perAgentDaily": {"maxTokens": 1000000, "maxCostUSD": 100.0, "maxRuns": 1000},
            },
            "tracing": {"contentCapture": "Disabled"},
            "ttlSecondsAfterFinished": 3600,
        },
    )


def schedule(namespace: str, agent_name: str = "helper") -> JsonDict:
    return _object(
        "AgentSchedule",
        namespace,
        {
            "agentRef": {"name": agent_name},
            "input": "Lot {{ signal.data.lot }} at {{ scheduledTime }}",
            "cron": "*/5 * * * *",
            "timeZone": "Europe/Amsterdam",
            "signals": [
                {
                    "name": "too-warm",
                    "type": "com.example.coldchain.*",
                    "source": "/sensors/*",
                    "significance": "data.celsius > 8.0",
                    "threshold": {"count": 3, "windowSeconds": 600},
                }
            ],
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 120,
            "suspend": False,
            "successfulRunsHistoryLimit": 3,
            "failedRunsHistoryLimit": 1,
        },
    )


def run(namespace: str, agent_name: str = "helper") -> JsonDict:
    """A run the stub runtime would finish (its input), with a recorded decision and a signal trigger."""
    return _object(
        "AgentRun",
        namespace,
        {
            "agentRef": {"name": agent_name},
            "input": json.dumps({"phase": "Succeeded"}),
            "trigger": {
                "type": "Signal",
                "scheduleRef": {"name": "coldchain"},
                "signal": {
                    "id": "reading-1",
                    "type": "com.example.coldchain.temperature",
                    "source": "/sensors/truck-4",
                    "time": "2026-01-01T00:00:00Z",
                },
            },
            "budget": {"maxTokens": 1000, "maxCostUSD": 0.5, "maxSteps": 5, "maxWallSeconds": 300},
            "ttlSecondsAfterFinished": 600,
            "approvals": [
                {
                    "proposalId": "p1",
                    "decision": "Approved",
                    "by": ADMIN,
                    "at": "2026-01-01T00:00:00Z",
                    "reason": "The lot is known.",
                }
            ],
        },
    )


def named(manifest: Any, name: str) -> Any:
    """The manifest with every `SELF` placeholder replaced by the object's name."""
    if isinstance(manifest, dict):
        return {k: named(v, name) for k, v in manifest.items()}
    if isinstance(manifest, list):
        return [named(v, name) for v in manifest]
    return name if manifest == SELF else manifest
