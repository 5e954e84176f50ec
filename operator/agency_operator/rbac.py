"""The permissions the operator uses, as a ClusterRole the Helm chart renders (and tests run under).

Why each rule is there:

- agency.dev objects: watch them, write their status; delete finished AgentRuns after their TTL;
  `agentruns/finalizers` update because children set `blockOwnerDeletion` on their owner reference.
- ServiceAccounts, Roles, RoleBindings: create and delete the identity of each run; update a parent
  run's Role so it may get the children it delegated to. Creating the
  generated Role needs no `escalate` because the operator holds everything in it itself (get agentruns,
  get/patch/update agentruns/status, get configmaps).
- `bind` on ClusterRoles, only those named here (the ones AgentPolicies may grant): binding a ClusterRole
  the operator does not hold itself needs `bind` on it; `escalate` is never needed or granted.
- `serviceaccounts/token` create: the local executor's TokenRequest.
- Pods, ConfigMaps, NetworkPolicies: a run's Pod, run file and network fence; `pods/log` get for the
  runtime's final result line when the container's termination message does not hold it.
- Secrets get: check a run's model credentials exist before it starts (the local executor also reads
  the key; a Pod gets it through a secretKeyRef).
- Events create: refusals and transitions, for `kubectl describe`.
- Endpoints get: the API server's addresses for run NetworkPolicies.
- Namespaces list/watch and CRDs list/watch: kopf's namespace and resource discovery.
- ValidatingWebhookConfigurations create, and patch of `agency.dev`: the admission webhook kopf manages
  (only used when AGENCY_WEBHOOK_PORT is set).
- TokenReviews and SubjectAccessReviews create: the signal endpoint authenticates senders (tokens for its
  audience) and checks they may create `signals` in the namespace.
"""

from __future__ import annotations

from collections.abc import Sequence

from agency_operator.kube import JsonDict
from agency_runtime.api.meta import GROUP

READ = ["get", "list", "watch"]


def build_operator_cluster_role(name: str, bindable_cluster_roles: Sequence[str]) -> JsonDict:
    """The operator's ClusterRole; `bindable_cluster_roles` are the ClusterRoles policies may grant runs."""
    rules: list[JsonDict] = [
        {
            "apiGroups": [GROUP],
            "resources": ["agents", "agentpolicies", "agentschedules"],
            "verbs": [*READ, "patch"],
        },
        # approve: granted to policies' approvers (approvers.py), so the operator holds it too (no escalate).
        {
            "apiGroups": [GROUP],
            "resources": ["agentruns"],
            "verbs": [*READ, "patch", "create", "delete", "approve"],
        },
        {
            "apiGroups": [GROUP],
            "resources": [
                "agents/status",
                "agentpolicies/status",
                "agentschedules/status",
                "agentruns/status",
            ],
            "verbs": ["get", "patch", "update"],
        },
        {"apiGroups": [GROUP], "resources": ["agentruns/finalizers"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": [*READ, "create", "delete"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "rolebindings"],
            "verbs": [*READ, "create", "delete"],
        },
        # update: a parent run's Role gains `get` on each child it delegated to (identity.grant_child).
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["update"]},
        # create signals: granted to runs (publish_signal), so the operator holds it too (no escalate).
        {"apiGroups": [GROUP], "resources": ["signals"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": [*READ, "create", "delete"]},
        # update: granted to runs for their journal head, so the operator holds it too (no escalate).
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": [*READ, "create", "update", "delete"]},
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["networkpolicies"],
            "verbs": [*READ, "create", "delete"],
        },
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        # The admission webhook (admission.py): kopf creates its ValidatingWebhookConfiguration and patches
        # it to point at the operator; `patch` only on that one, by name.
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "verbs": ["patch"],
            "resourceNames": ["agency.dev"],
        },
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        },
    ]
    if bindable_cluster_roles:
        rules.append(
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["clusterroles"],
                "verbs": ["bind"],
                "resourceNames": sorted(set(bindable_cluster_roles)),
            }
        )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "agency", "app.kubernetes.io/component": "operator"},
        },
        "rules": rules,
    }
