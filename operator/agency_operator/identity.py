"""A run's own Kubernetes identity: a ServiceAccount, a Role over only its own objects, and bindings.

Each run gets a ServiceAccount of its own (no token automounted; the run's token is projected with the
policy's audience and lifetime, or requested for a local process), a generated Role that lets it read its
own AgentRun and run file and patch its own status (`resourceNames`), and RoleBindings to the
ClusterRoles its policy allows. The operator never needs `escalate`: it holds every permission of the
generated Role itself (including `create` and `update` of ConfigMaps for the run's journal), and `bind` on
the ClusterRoles the chart lists (see `rbac.py`).

When the run ends `revoke` deletes all of it at once, so every token of the run stops working. Objects
in the run's namespace are also owned by the run (garbage-collected with it); bindings in other
namespaces cannot be owned across namespaces, so they carry the run's uid label and are deleted by label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agency_operator import names
from agency_operator.kube import JsonDict, Kube, KubeError, path_for
from agency_runtime.api.meta import GROUP
from agency_runtime.api.policy import AgentPolicy
from agency_runtime.journal_kube import journal_rules

RBAC = "rbac.authorization.k8s.io/v1"


def _meta(run: Mapping[str, Any], name: str, namespace: str, component: str) -> JsonDict:
    meta: JsonDict = {"name": name, "namespace": namespace, "labels": names.run_labels(run, component)}
    if namespace == run["metadata"]["namespace"]:
        meta["ownerReferences"] = [names.owner_reference(run)]
    else:
        meta["labels"][names.RUN_NAMESPACE_LABEL] = run["metadata"]["namespace"]
    return meta


def build_service_account(run: Mapping[str, Any]) -> JsonDict:
    """The run's ServiceAccount. No automounted token: the pod gets an audience-bound projected one."""
    meta = run["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(run, names.service_account(meta["name"]), meta["namespace"], "identity"),
        "automountServiceAccountToken": False,
    }


def build_role(run: Mapping[str, Any], children: Sequence[str] = ()) -> JsonDict:
    """Only the run's own objects: get its AgentRun, get and patch its status, get its run file, and keep
    its journal (the rules the runtime's Kubernetes journal declares it needs); and collaborate:

    - create AgentRuns (delegation): RBAC cannot limit create by name or content, so the run-children
      admission policy does: a run may create only its own children (parentRunRef, owner and trigger);
    - get its children (`children`): their names cannot be known in advance (derived from the tool
      call), so the operator adds each child's name when it sees the child (`grant_child`); a run never
      reads AgentRuns that are not its own or its children;
    - get and list Agents (find_agents, agent cards): discovery metadata of its namespace;
    - create `signals` (publish_signal): the virtual resource the signal endpoint checks.
    """
    meta = run["metadata"]
    name = meta["name"]
    return {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": _meta(run, names.role(name), meta["namespace"], "identity"),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["agentruns"],
                "resourceNames": [name, *sorted(set(children))],
                "verbs": ["get"],
            },
            {"apiGroups": [GROUP], "resources": ["agentruns"], "verbs": ["create"]},
            {"apiGroups": [GROUP], "resources": ["agents"], "verbs": ["get", "list"]},
            {"apiGroups": [GROUP], "resources": ["signals"], "verbs": ["create"]},
            {
                "apiGroups": [GROUP],
                "resources": ["agentruns/status"],
                "resourceNames": [name],
                "verbs": ["get", "patch", "update"],
            },
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [names.run_file_config_map(name)],
                "verbs": ["get"],
            },
            # The run's journal (ConfigMaps it creates; the run-journals admission policy limits the names).
            *journal_rules(name),
        ],
    }


def _subject(run: Mapping[str, Any]) -> JsonDict:
    meta = run["metadata"]
    return {
        "kind": "ServiceAccount",
        "name": names.service_account(meta["name"]),
        "namespace": meta["namespace"],
    }


def build_self_binding(run: Mapping[str, Any]) -> JsonDict:
    """Binds the generated Role to the run's ServiceAccount."""
    meta = run["metadata"]
    return {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": _meta(run, names.self_binding(meta["name"]), meta["namespace"], "identity"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": names.role(meta["name"]),
        },
        "subjects": [_subject(run)],
    }


def build_role_bindings(run: Mapping[str, Any], policy: AgentPolicy) -> list[JsonDict]:
    """One RoleBinding per ClusterRole the policy allows and per namespace it names (default: the run's)."""
    meta = run["metadata"]
    bindings = []
    for grant in policy.spec.identity.cluster_roles:
        for namespace in grant.namespaces or [meta["namespace"]]:
            bindings.append(
                {
                    "apiVersion": RBAC,
                    "kind": "RoleBinding",
                    "metadata": _meta(
                        run, names.role_binding(meta["name"], grant.name), namespace, "identity"
                    ),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": grant.name,
                    },
                    "subjects": [_subject(run)],
                }
            )
    return bindings


def build_identity(run: Mapping[str, Any], policy: AgentPolicy) -> list[JsonDict]:
    """The run's identity that can be created side by side, ServiceAccount first: its ServiceAccount, its
    Role and its bindings to the policy's ClusterRoles.

    The binding to the run's own Role (`build_self_binding`) is not among them: it needs that Role to
    exist. The operator holds no `bind` on run Roles, so the API server checks that it holds every
    permission of the Role a binding names, and while that Role does not exist it answers NotFound. (The
    bindings to ClusterRoles pass on the operator's `bind` of the listed roles.)"""
    return [build_service_account(run), build_role(run), *build_role_bindings(run, policy)]


def revoke_identity(kube: Kube, run: Mapping[str, Any]) -> int:
    """Delete the run's ServiceAccount, Role and bindings (so its tokens stop working); returns how many went.

    The ServiceAccount goes first: from that moment the API server rejects every token issued for it.
    Bindings are found by the run's uid label in every namespace, so grants into other namespaces go too.
    """
    meta = run["metadata"]
    ns, name = meta["namespace"], meta["name"]
    deleted = 0
    deleted += kube.delete(path_for("v1", "serviceaccounts", ns, names.service_account(name)))
    deleted += kube.delete(path_for(RBAC, "rolebindings", ns, names.self_binding(name)))
    deleted += kube.delete(path_for(RBAC, "roles", ns, names.role(name)))
    for binding in kube.list(path_for(RBAC, "rolebindings"), f"{names.RUN_UID_LABEL}={meta['uid']}"):
        bmeta = binding["metadata"]
        deleted += kube.delete(path_for(RBAC, "rolebindings", bmeta["namespace"], bmeta["name"]))
    return deleted


#: Attempts at adding a child to its parent's Role when other children are added at the same time.
_GRANT_ATTEMPTS = 5


def readable_runs(role: Mapping[str, Any]) -> list[str]:
    """The AgentRuns a run's Role lets it get (its own name first, then its children)."""
    for rule in role.get("rules", []):
        if rule.get("resources") == ["agentruns"] and rule.get("verbs") == ["get"]:
            return list(rule.get("resourceNames", []))
    return []


def grant_child(kube: Kube, namespace: str, parent: str, child: str) -> bool:
    """Let the parent run get its child: add the child's name to the parent's Role; True if it changed.

    A replace with the Role's resourceVersion, retried on conflict, so two children added at once both
    stay. A parent without a Role (finished: its identity is revoked) gets nothing.
    """
    path = path_for(RBAC, "roles", namespace, names.role(parent))
    for _ in range(_GRANT_ATTEMPTS):
        role = kube.get_or_none(path)
        if role is None:
            return False
        readable = readable_runs(role)
        if child in readable:
            return False
        rules = [
            r
            for r in role["rules"]
            if not (r.get("resources") == ["agentruns"] and r.get("verbs") == ["get"])
        ]
        rules.insert(
            0,
            {
                "apiGroups": [GROUP],
                "resources": ["agentruns"],
                "resourceNames": [parent, *sorted({*readable, child} - {parent})],
                "verbs": ["get"],
            },
        )
        try:
            kube.request("PUT", path, {**role, "rules": rules})
        except KubeError as err:
            if err.conflict:
                continue
            if err.not_found:
                return False
            raise
        return True
    raise KubeError(409, "Conflict", f"Role {names.role(parent)} kept changing while adding {child}")
