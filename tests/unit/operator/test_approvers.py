from __future__ import annotations

from operator_objects import NAMESPACE, policy_obj

from agency_operator.approvers import build_approver_binding, build_approver_role


def test_approvers_get_the_approve_verb_on_runs_of_the_policys_namespace_only() -> None:
    role = build_approver_role(policy_obj())
    assert role["metadata"]["namespace"] == NAMESPACE
    (rule,) = role["rules"]
    assert rule["resources"] == ["agentruns"]
    assert "approve" in rule["verbs"]
    assert not {"create", "delete", "update", "*"} & set(rule["verbs"])


def test_each_approver_kind_becomes_an_rbac_subject() -> None:
    policy = policy_obj(
        approvals={
            "approvers": [
                {"kind": "User", "name": "dana@example.com"},
                {"kind": "Group", "name": "dispatch"},
                {"kind": "ServiceAccount", "name": "bot", "namespace": "ops"},
            ]
        }
    )
    binding = build_approver_binding(policy)
    assert binding is not None
    assert binding["subjects"] == [
        {"kind": "User", "name": "dana@example.com", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "Group", "name": "dispatch", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "ServiceAccount", "name": "bot", "namespace": "ops"},
    ]


def test_policy_without_approvers_binds_no_one() -> None:
    assert build_approver_binding(policy_obj()) is None
