"""The mix of inputs the fuzz sends per kind: mostly near-valid manifests, some allowed variants, broken
cross-field rules, and arbitrary JSON specs."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from integration.fuzz.mutations import Case, Tokens, field_path, pick, random_spec, schema_case, with_value
from integration.fuzz.rule_violations import rule_case
from integration.fuzz.valid_manifests import JsonDict

#: How often each family is drawn, out of ten.
FAMILIES = ("broken-field",) * 4 + ("allowed-variant",) * 3 + ("broken-rule",) * 2 + ("random-spec",)


def cases(kind: str, base: JsonDict) -> st.SearchStrategy[Case]:
    families = {
        "broken-field": schema_case(kind, base, good=False),
        "allowed-variant": schema_case(kind, base, good=True),
        "broken-rule": rule_case(kind, base),
        "random-spec": random_spec(kind, base),
    }

    @st.composite
    def case(draw: st.DrawFn) -> Case:
        return draw(families[pick(draw, FAMILIES)])

    return case()


def regressions(kind: str, base: JsonDict) -> list[Case]:
    """Inputs an earlier run of this fuzz found getting through, tried first on every run:

    - a JSON array for a date-time field of an AgentRun: kube-apiserver stored it, and the run could never
      be parsed again (every reconcile of it, and of its Agent, failed); the CRDs now refuse it;
    - an Agent requesting more CPU or memory than its limit: accepted, but the Pod API refuses every run's
      Pod, so its runs hung in Pending with a traceback per reconcile; the CRD now refuses it;
    - a model URL with a port that is out of range or not a number: accepted, but building the run's
      NetworkPolicy raised on it, at every reconcile; the URL pattern now allows ports 1 to 65535 only;
    - a ServiceAccount approver whose name or namespace is no DNS name: accepted, but the RoleBinding for
      the policy's approvers was refused, so the policy was never reconciled; the CRD now refuses them;
    - a ClusterRole granted in a namespace that does not exist: the run's RoleBinding there answered 404
      at every reconcile; the run now waits with IdentityReady False, IdentityNamespaceNotFound.
    """
    found: dict[str, list[tuple[str, Tokens, Any]]] = {
        "AgentRun": [
            ("array-for-date-time", ("spec", "trigger", "signal", "time"), []),
            ("array-for-date-time", ("spec", "approvals", 0, "at"), ["2026-01-01T00:00:00Z"]),
        ],
        "Agent": [
            ("cpu-request-above-limit", ("spec", "runtime", "resources", "requests", "cpu"), "9528214100e-3"),
            ("memory-request-above-limit", ("spec", "runtime", "resources", "requests", "memory"), "1Gi"),
            ("api-base-port-out-of-range", ("spec", "model", "apiBase"), "http://127.0.0.1:99999/v1"),
            ("api-base-port-not-a-number", ("spec", "model", "fallbacks", 0, "apiBase"), "http://h:x/v1"),
        ],
        "AgentPolicy": [
            ("approver-name-no-dns-name", ("spec", "approvals", "approvers", 1, "name"), "Not A Name"),
            ("approver-namespace-with-dots", ("spec", "approvals", "approvers", 1, "namespace"), "a.b"),
            ("grant-namespace-with-dots", ("spec", "identity", "clusterRoles", 0, "namespaces"), ["a.b"]),
            ("grant-in-a-missing-namespace", ("spec", "identity", "clusterRoles", 0, "namespaces"), ["gone"]),
        ],
    }
    return [
        Case(kind, f"regression:{name}", field_path(path), with_value(base, path, value))
        for name, path, value in found.get(kind, [])
    ]
