from __future__ import annotations

from typing import Any

from operator_objects import RUN_UID, agent_obj, policy_obj, run_body

from agency_operator.netpol import build_network_policy, endpoint_rule, signals_rule


def _peers(rule: dict[str, Any]) -> list[str]:
    return sorted(p["ipBlock"]["cidr"] for p in rule["to"] if "ipBlock" in p)


def test_network_policy_selects_only_the_runs_pod_and_denies_ingress() -> None:
    netpol = build_network_policy(run_body(), agent_obj(), policy_obj(), otlp_endpoint=None, api_endpoints=[])
    spec = netpol["spec"]
    assert spec["podSelector"] == {"matchLabels": {"agency.dev/run-uid": RUN_UID}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == []


def test_egress_allows_dns_the_api_the_model_and_otlp() -> None:
    netpol = build_network_policy(
        run_body(),
        agent_obj(),
        policy_obj(),
        otlp_endpoint="http://10.0.0.7:4318",
        api_endpoints=[("10.96.0.1", 443)],
    )
    egress = netpol["spec"]["egress"]
    assert egress[0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert (_peers(egress[1]), egress[1]["ports"]) == (["10.96.0.1/32"], [{"protocol": "TCP", "port": 443}])
    # The model's apiBase is a host name: its port is open to any address (the runtime checks the host).
    assert (_peers(egress[2]), egress[2]["ports"]) == (
        ["0.0.0.0/0", "::/0"],
        [{"protocol": "TCP", "port": 443}],
    )
    assert (_peers(egress[3]), egress[3]["ports"]) == (["10.0.0.7/32"], [{"protocol": "TCP", "port": 4318}])
    assert len(egress) == 4


def test_policy_cidrs_become_exact_rules_and_hosts_open_only_their_ports() -> None:
    policy = policy_obj(
        network={
            "egress": [
                {"cidrs": ["10.20.0.0/16"], "ports": [{"port": 5432}]},
                {"hosts": ["api.example.com"], "ports": [{"port": 8443}]},
            ]
        }
    )
    egress = build_network_policy(run_body(), agent_obj(), policy, otlp_endpoint=None, api_endpoints=[])[
        "spec"
    ]["egress"]
    assert {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    } in egress
    hosts = next(r for r in egress if r["ports"] == [{"protocol": "TCP", "port": 8443}])
    assert _peers(hosts) == ["0.0.0.0/0", "::/0"]


def test_endpoint_rule_reads_scheme_default_ports() -> None:
    assert endpoint_rule("http://192.168.1.5")["ports"] == [{"protocol": "TCP", "port": 80}]  # type: ignore[index]
    assert endpoint_rule("https://[2001:db8::1]:9443/v1") == {
        "to": [{"ipBlock": {"cidr": "2001:db8::1/128"}}],
        "ports": [{"protocol": "TCP", "port": 9443}],
    }


def test_a_run_that_may_publish_signals_may_reach_the_operators_pods_on_the_signal_port_only() -> None:
    peer = signals_rule("agency-system", [("app.kubernetes.io/component", "operator")], 8443)
    netpol = build_network_policy(
        run_body(), agent_obj(), policy_obj(), otlp_endpoint=None, api_endpoints=[], signals=peer
    )
    assert peer in netpol["spec"]["egress"]
    assert peer == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agency-system"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 8443}],
    }


def test_without_a_signal_endpoint_or_its_pods_there_is_no_rule_for_it() -> None:
    assert signals_rule(None, [("a", "b")], 8443) is None
    assert signals_rule("agency-system", [], 8443) is None
    assert signals_rule("agency-system", [("a", "b")], 0) is None
