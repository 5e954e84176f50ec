from __future__ import annotations

from operator_objects import NAMESPACE, RUN_UID, policy_obj, run_body

from agency_operator.identity import (
    build_identity,
    build_role,
    build_role_bindings,
    build_self_binding,
    build_service_account,
)


def test_service_account_has_no_automounted_token_and_is_owned_by_the_run() -> None:
    sa = build_service_account(run_body())
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["name"] == "agency-run-r1"
    (owner,) = sa["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "AgentRun",
        "r1",
        RUN_UID,
        True,
    )


def test_generated_role_reaches_only_the_runs_own_objects() -> None:
    rules = build_role(run_body())["rules"]
    unnamed = [rule for rule in rules if not rule.get("resourceNames")]
    # RBAC cannot limit create by name: the run-journals and run-children admission policies limit what
    # the run may create; listing agents is discovery, signals a virtual resource the endpoint checks.
    assert sorted(unnamed, key=str) == sorted(
        [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            {"apiGroups": ["agency.dev"], "resources": ["agentruns"], "verbs": ["create"]},
            {"apiGroups": ["agency.dev"], "resources": ["agents"], "verbs": ["get", "list"]},
            {"apiGroups": ["agency.dev"], "resources": ["signals"], "verbs": ["create"]},
        ],
        key=str,
    )
    by_resource: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for rule in rules:
        if rule not in unnamed:
            key = (tuple(rule["resources"]), tuple(rule["verbs"]))
            by_resource.setdefault(key, []).extend(rule["resourceNames"])
    assert by_resource[(("agentruns",), ("get",))] == ["r1"]
    assert by_resource[(("agentruns/status",), ("get", "patch", "update"))] == ["r1"]
    readable = by_resource[(("configmaps",), ("get",))]
    assert readable[0] == "agency-run-r1"  # the run file
    assert all(name.startswith("agency-run-r1.journal-") for name in readable[1:])
    assert by_resource[(("configmaps",), ("update",))] == ["agency-run-r1.journal-head"]
    assert not any(verb in {"delete", "watch", "*"} for rule in rules for verb in rule["verbs"])
    assert [r["resources"] for r in rules if "list" in r["verbs"]] == [["agents"]]


def test_a_parent_role_reads_the_children_it_was_granted_and_no_other_run() -> None:
    rules = build_role(run_body(), children=["r1-d-b", "r1-d-a"])["rules"]
    gets = [r for r in rules if r["resources"] == ["agentruns"] and r["verbs"] == ["get"]]
    assert gets == [
        {
            "apiGroups": ["agency.dev"],
            "resources": ["agentruns"],
            "resourceNames": ["r1", "r1-d-a", "r1-d-b"],
            "verbs": ["get"],
        }
    ]


def test_self_binding_binds_the_generated_role_to_the_runs_service_account() -> None:
    binding = build_self_binding(run_body())
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "agency-run-r1",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "agency-run-r1", "namespace": NAMESPACE}
    ]


def test_policy_cluster_roles_are_bound_in_the_runs_namespace_by_default() -> None:
    policy = policy_obj(identity={"clusterRoles": [{"name": "view"}]})
    (binding,) = build_role_bindings(run_body(), policy)
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert binding["roleRef"]["name"] == "view"
    assert binding["metadata"]["ownerReferences"][0]["uid"] == RUN_UID


def test_bindings_in_other_namespaces_carry_the_run_instead_of_an_owner() -> None:
    policy = policy_obj(
        identity={"clusterRoles": [{"name": "view", "namespaces": ["cold-chain", NAMESPACE]}]}
    )
    bindings = {b["metadata"]["namespace"]: b for b in build_role_bindings(run_body(), policy)}
    other = bindings["cold-chain"]["metadata"]
    assert "ownerReferences" not in other  # owners across namespaces are not allowed
    assert other["labels"]["agency.dev/run-uid"] == RUN_UID
    assert other["labels"]["agency.dev/run-namespace"] == NAMESPACE
    assert bindings[NAMESPACE]["subjects"] == [
        {"kind": "ServiceAccount", "name": "agency-run-r1", "namespace": NAMESPACE}
    ]


def test_policy_without_cluster_roles_grants_nothing_beyond_the_runs_own_role() -> None:
    kinds = [o["kind"] for o in [*build_identity(run_body(), policy_obj()), build_self_binding(run_body())]]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding"]
