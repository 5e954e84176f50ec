"""ValidatingAdmissionPolicies that ship beside the CRDs: what the API server itself enforces for Agency.

`approvals`: a decision on a proposed tool call is recorded by appending to an AgentRun's spec.approvals.
The API server checks each new entry: `by` must be the requester's own user name (nobody records a decision
in someone else's name), and the requester must be allowed the custom RBAC verb `approve` on that AgentRun
(the operator grants it to the policy's approvers; an admin can grant it with any Role).

`run journals`: a run keeps its journal in ConfigMaps it creates itself. RBAC cannot restrict `create` by
name, so this policy does: a run's ServiceAccount (`agency-run-<run>`) may create ConfigMaps in its own
namespace only when their names start with `agency-run-<run>.journal-`.

`run children`: a run may create AgentRuns (delegation), and RBAC cannot restrict `create` by content, so
this policy does: a run's ServiceAccount may create an AgentRun only as its own child: `spec.parentRunRef`
names the run, `spec.trigger.type` is Delegation, and an ownerReference to the run (so the child goes with
its parent). The operator then lets the parent, and only it, read the child.

All are generated (`python -m agency_runtime.api.crd --out crds`) into crds/, so whatever installs the
CRDs installs these too.
"""

from __future__ import annotations

from agency_runtime.api.meta import GROUP, JsonObject

ADMISSION_API = "admissionregistration.k8s.io/v1"
APPROVE_VERB = "approve"
APPROVALS_POLICY = f"{GROUP}-approvals"
JOURNAL_POLICY = f"{GROUP}-run-journals"
CHILDREN_POLICY = f"{GROUP}-run-children"
RUN_SERVICE_ACCOUNT_PREFIX = "agency-run-"
JOURNAL_INFIX = ".journal-"  # a dot: run names are DNS labels, so no other object of a run can collide

_OLD_IDS = (
    "oldObject != null && has(oldObject.spec.approvals) ? oldObject.spec.approvals.map(a, a.proposalId) : []"
)
_ADDED = (
    "has(object.spec.approvals) ? object.spec.approvals.filter(a, !(a.proposalId in variables.oldIds)) : []"
)
_MAY_APPROVE = (
    f"authorizer.group('{GROUP}').resource('agentruns')"
    ".namespace(object.metadata.namespace).name(object.metadata.name)"
    f".check('{APPROVE_VERB}').allowed()"
)


def _binding(policy: str) -> JsonObject:
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy},
        "spec": {"policyName": policy, "validationActions": ["Deny"]},
    }


def approvals_policy() -> JsonObject:
    """New spec.approvals entries: recorded under the requester's own name, by someone allowed `approve`."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": APPROVALS_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["agentruns"],
                    }
                ]
            },
            "variables": [
                {"name": "oldIds", "expression": _OLD_IDS},
                {"name": "added", "expression": _ADDED},
            ],
            "validations": [
                {
                    "expression": "variables.added.all(a, a.by == request.userInfo.username)",
                    "messageExpression": (
                        "'spec.approvals: a decision is recorded under your own name: set by to \"' "
                        "+ request.userInfo.username + '\"'"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": f"size(variables.added) == 0 || {_MAY_APPROVE}",
                    "messageExpression": (
                        "'spec.approvals: ' + request.userInfo.username + ' may not decide on proposals of "
                        "AgentRun ' + object.metadata.name + ': approvers need the RBAC verb \"approve\" "
                        f"on agentruns.{GROUP} in namespace ' + object.metadata.namespace + ' (the operator "
                        "grants it to the AgentPolicy\\'s spec.approvals.approvers)'"
                    ),
                    "reason": "Forbidden",
                },
            ],
        },
    }


_RUN_OF_USER = f"request.userInfo.username.split(':')[3].substring({len(RUN_SERVICE_ACCOUNT_PREFIX)})"


def journal_policy() -> JsonObject:
    """ConfigMaps created by a run's ServiceAccount in its own namespace: only its own journal's names."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": JOURNAL_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "matchConditions": [
                {
                    "name": "run-service-account-in-its-namespace",
                    "expression": (
                        "request.userInfo.username.startsWith('system:serviceaccount:' + request.namespace"
                        f" + ':{RUN_SERVICE_ACCOUNT_PREFIX}')"
                    ),
                }
            ],
            "variables": [{"name": "run", "expression": _RUN_OF_USER}],
            "validations": [
                {
                    "expression": (
                        f"object.metadata.name.startsWith('{RUN_SERVICE_ACCOUNT_PREFIX}' + variables.run"
                        f" + '{JOURNAL_INFIX}')"
                    ),
                    "messageExpression": (
                        "'run ' + variables.run + ' may create ConfigMaps in its namespace only for its "
                        f"journal: names must start with {RUN_SERVICE_ACCOUNT_PREFIX}' + variables.run + "
                        f"'{JOURNAL_INFIX}'"
                    ),
                    "reason": "Forbidden",
                }
            ],
        },
    }


def children_policy() -> JsonObject:
    """AgentRuns created by a run's ServiceAccount: only its own children, owned by it."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": CHILDREN_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE"],
                        "resources": ["agentruns"],
                    }
                ]
            },
            "matchConditions": [
                {
                    "name": "run-service-account-in-its-namespace",
                    "expression": (
                        "request.userInfo.username.startsWith('system:serviceaccount:' + request.namespace"
                        f" + ':{RUN_SERVICE_ACCOUNT_PREFIX}')"
                    ),
                }
            ],
            "variables": [{"name": "run", "expression": _RUN_OF_USER}],
            "validations": [
                {
                    "expression": (
                        "has(object.spec.parentRunRef) && object.spec.parentRunRef.name == variables.run"
                        " && has(object.spec.trigger) && object.spec.trigger.type == 'Delegation'"
                    ),
                    "messageExpression": (
                        "'run ' + variables.run + ' may create AgentRuns only as its own children: set "
                        "spec.parentRunRef.name to ' + variables.run + ' and spec.trigger.type to Delegation'"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": (
                        "has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(o, "
                        "o.kind == 'AgentRun' && o.name == variables.run)"
                    ),
                    "messageExpression": (
                        "'a child of run ' + variables.run + ' must be owned by it (an ownerReference to "
                        "AgentRun ' + variables.run + '), so it goes with its parent'"
                    ),
                    "reason": "Forbidden",
                },
            ],
        },
    }


def admission_objects() -> dict[str, list[JsonObject]]:
    """Every generated admission file name and its objects (policy, then binding)."""
    return {
        f"{GROUP}_approvals-admission.yaml": [approvals_policy(), _binding(APPROVALS_POLICY)],
        f"{GROUP}_run-journals-admission.yaml": [journal_policy(), _binding(JOURNAL_POLICY)],
        f"{GROUP}_run-children-admission.yaml": [children_policy(), _binding(CHILDREN_POLICY)],
    }
