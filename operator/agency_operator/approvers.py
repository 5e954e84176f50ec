"""Who may decide on proposed tool calls: the approvers an AgentPolicy names get a Role to do it.

The `approvals` admission policy lets a decision into an AgentRun's spec.approvals only from a user
holding the RBAC verb `approve` on that run; the operator grants it (with get, list, watch and patch of
AgentRuns, to read proposals and record decisions) to the policy's spec.approvals.approvers, in the
policy's namespace, through a Role and RoleBinding owned by the policy. No approvers: no binding.
"""

from __future__ import annotations

from agency_operator import names
from agency_operator.apply import ensure
from agency_operator.kube import JsonDict, Kube, KubeError, path_for
from agency_runtime.api.meta import API_VERSION, GROUP
from agency_runtime.api.policy import AgentPolicy

RBAC = "rbac.authorization.k8s.io/v1"


def approvers_name(policy: str) -> str:
    return f"agency-approvers-{policy}"


def _meta(policy: AgentPolicy) -> JsonDict:
    return {
        "name": approvers_name(policy.metadata.name),
        "namespace": policy.metadata.namespace,
        "labels": {names.MANAGED_BY: names.OPERATOR, names.COMPONENT_LABEL: "approvers"},
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": "AgentPolicy",
                "name": policy.metadata.name,
                "uid": policy.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def build_approver_role(policy: AgentPolicy) -> JsonDict:
    """Read runs and record decisions on them: what deciding on a proposal takes, nothing more."""
    return {
        "apiVersion": RBAC,
        "kind": "Role",
        "metadata": _meta(policy),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["agentruns"],
                "verbs": ["get", "list", "watch", "patch", "approve"],
            }
        ],
    }


def build_approver_binding(policy: AgentPolicy) -> JsonDict | None:
    """The policy's approvers as RBAC subjects, or None when it names none."""
    subjects: list[JsonDict] = []
    for approver in policy.spec.approvals.approvers:
        subject: JsonDict = {"kind": approver.kind, "name": approver.name}
        if approver.kind == "ServiceAccount":
            subject["namespace"] = approver.namespace
        else:
            subject["apiGroup"] = "rbac.authorization.k8s.io"
        subjects.append(subject)
    if not subjects:
        return None
    return {
        "apiVersion": RBAC,
        "kind": "RoleBinding",
        "metadata": _meta(policy),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": approvers_name(policy.metadata.name),
        },
        "subjects": subjects,
    }


def ensure_approvers(kube: Kube, policy: AgentPolicy) -> None:
    """Make the approvers' Role and RoleBinding match the policy (the binding's subjects may change)."""
    namespace = policy.metadata.namespace or ""
    binding_path = path_for(RBAC, "rolebindings", namespace, approvers_name(policy.metadata.name))
    binding = build_approver_binding(policy)
    if binding is None:
        kube.delete(binding_path)
        return
    ensure(kube, build_approver_role(policy))
    existing, created = ensure(kube, binding)
    if not created and existing.get("subjects") != binding["subjects"]:
        try:
            kube.patch(binding_path, {"subjects": binding["subjects"]})
        except KubeError as err:
            if not err.not_found:
                raise
