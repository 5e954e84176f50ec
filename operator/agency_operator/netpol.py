"""A NetworkPolicy per run: egress only where the policy allows, plus DNS, the API, the model, OTLP and
the operator's signal endpoint.

Selecting the run's Pod with both policy types and no ingress rules denies all ingress and every egress
not listed. NetworkPolicy speaks addresses, not host names: a rule naming hosts (and a model or OTLP
endpoint given by host name) opens its ports to any address, and the runtime's own host allow-list is
the fence that names hosts. Endpoints given as IP addresses and the policy's CIDRs are exact.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from agency_operator import names
from agency_operator.kube import JsonDict
from agency_runtime.api.agent import Agent
from agency_runtime.api.policy import AgentPolicy

ANYWHERE = ("0.0.0.0/0", "::/0")


def _cidr_of(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return f"{address}/{address.max_prefixlen}"


def _peers(cidrs: Sequence[str]) -> list[JsonDict]:
    return [{"ipBlock": {"cidr": c}} for c in cidrs]


def endpoint_rule(url: str) -> JsonDict | None:
    """Egress to the host and port of a URL: exact for an IP address, any address for a host name."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    cidr = _cidr_of(parts.hostname)
    return {"to": _peers([cidr] if cidr else ANYWHERE), "ports": [{"protocol": "TCP", "port": port}]}


def https_anywhere() -> JsonDict:
    return {"to": _peers(ANYWHERE), "ports": [{"protocol": "TCP", "port": 443}]}


def dns_rule() -> JsonDict:
    """Cluster DNS: the kube-dns pods in kube-system, on port 53 over UDP and TCP."""
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def api_rule(api_endpoints: Sequence[tuple[str, int]]) -> JsonDict | None:
    """The Kubernetes API endpoints (after the Service's address translation, which is what CNIs see)."""
    if not api_endpoints:
        return None
    cidrs = sorted({cidr for host, _ in api_endpoints if (cidr := _cidr_of(host) or host)})
    ports = sorted({port for _, port in api_endpoints})
    return {"to": _peers(cidrs), "ports": [{"protocol": "TCP", "port": p} for p in ports]}


def policy_rules(policy: AgentPolicy) -> list[JsonDict]:
    rules = []
    for egress in policy.spec.network.egress:
        targets = list(egress.cidrs) if egress.cidrs else []
        if egress.hosts:
            targets = list(ANYWHERE)
        rules.append(
            {
                "to": _peers(targets),
                "ports": [{"protocol": p.protocol, "port": p.port} for p in egress.ports],
            }
        )
    return rules


def signals_rule(namespace: str | None, labels: Sequence[tuple[str, str]], port: int) -> JsonDict | None:
    """The operator's signal endpoint, by its Pods (a Service's port is translated to the Pod's before
    NetworkPolicy sees it, so the rule names the Pods and the container port)."""
    if not namespace or not labels or not port:
        return None
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "podSelector": {"matchLabels": dict(labels)},
            }
        ],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def build_network_policy(
    run: Mapping[str, Any],
    agent: Agent,
    policy: AgentPolicy,
    *,
    otlp_endpoint: str | None,
    api_endpoints: Sequence[tuple[str, int]],
    signals: JsonDict | None = None,
) -> JsonDict:
    """Default deny for the run's Pod, then exactly the egress it needs and its policy allows (`signals`:
    the rule to the signal endpoint, when runs may publish)."""
    meta = run["metadata"]
    egress: list[JsonDict] = [dns_rule()]
    for rule in (
        signals,
        api_rule(api_endpoints),
        # No api_base: the provider's public HTTPS endpoint, whose addresses no NetworkPolicy can name.
        endpoint_rule(agent.spec.model.api_base) if agent.spec.model.api_base else https_anywhere(),
        *(endpoint_rule(f.api_base) for f in agent.spec.model.fallbacks if f.api_base),
        endpoint_rule(otlp_endpoint) if otlp_endpoint else None,
    ):
        if rule is not None and rule not in egress:
            egress.append(rule)
    for rule in policy_rules(policy):
        if rule not in egress:
            egress.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": names.network_policy(meta["name"]),
            "namespace": meta["namespace"],
            "labels": names.run_labels(run, "network"),
            "ownerReferences": [names.owner_reference(run)],
        },
        "spec": {
            "podSelector": {"matchLabels": {names.RUN_UID_LABEL: meta["uid"]}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }
