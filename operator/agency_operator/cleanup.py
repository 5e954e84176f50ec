"""What the operator tidies outside single runs: orphaned cross-namespace bindings, and API addresses.

Bindings in other namespaces than their run's cannot be owned by it, so the garbage collector does not
remove them; the run's DELETED event does. If the operator was down when a run was deleted, the sweep
at startup removes bindings whose run (by namespace, name and uid) no longer exists.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from agency_operator import names
from agency_operator.kube import Kube, path_for
from agency_operator.settings import Settings
from agency_runtime.api.meta import API_VERSION

RBAC = "rbac.authorization.k8s.io/v1"


def sweep_orphans(kube: Kube) -> int:
    """Delete run bindings whose run is gone; returns how many."""
    removed = 0
    for binding in kube.list(path_for(RBAC, "rolebindings"), names.RUN_UID_LABEL):
        meta = binding["metadata"]
        labels = meta.get("labels", {})
        namespace = labels.get(names.RUN_NAMESPACE_LABEL, meta["namespace"])
        run = kube.get_or_none(path_for(API_VERSION, "agentruns", namespace, labels.get(names.RUN_LABEL, "")))
        if run is None or run["metadata"]["uid"] != labels.get(names.RUN_UID_LABEL):
            removed += kube.delete(path_for(RBAC, "rolebindings", meta["namespace"], meta["name"]))
    return removed


def api_endpoints(kube: Kube, settings: Settings) -> list[tuple[str, int]]:
    """Addresses runs use to reach the API server: from settings, else the `kubernetes` Endpoints, else the
    address the operator itself uses (API servers do not publish loopback addresses as endpoints)."""
    if settings.api_server_cidrs:
        return [(cidr, 443) for cidr in settings.api_server_cidrs]
    endpoints = kube.get_or_none(path_for("v1", "endpoints", "default", "kubernetes")) or {}
    found: list[tuple[str, int]] = []
    for subset in endpoints.get("subsets", []):
        ports = [p["port"] for p in subset.get("ports", []) if "port" in p] or [443]
        for address in subset.get("addresses", []):
            found.extend((address["ip"], port) for port in ports)
    if not found:
        own = urlsplit(kube.connection.host)
        if own.hostname:
            found.append((own.hostname, own.port or 443))
    return found
