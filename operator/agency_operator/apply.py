"""Applying built objects idempotently: create if absent, leave what exists.

Every child of a run has a deterministic name and a spec fixed when the run starts, so "create, and on
409 read what is there" is the whole of idempotency here: a second reconcile, or a restarted operator
finishing a half-done one, changes nothing and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

from agency_operator.kube import JsonDict, Kube, KubeError, path_for

#: Shared by every reconcile: the requests of one `ensure_all` go out side by side.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="agency-ensure")


def object_path(body: JsonDict, name: str | None = None) -> str:
    kind_plural = plural(body["kind"])
    return path_for(body["apiVersion"], kind_plural, body["metadata"].get("namespace"), name)


_PLURALS = {
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ConfigMap": "configmaps",
    "Pod": "pods",
    "NetworkPolicy": "networkpolicies",
    "Secret": "secrets",
}


def plural(kind: str) -> str:
    return _PLURALS[kind]


def ensure(kube: Kube, body: JsonDict) -> tuple[JsonDict, bool]:
    """The object as it is on the server, and whether this call created it.

    An object that exists (409) but is gone when read was being deleted (its owner went, the garbage
    collector took it): create it once more rather than fail the reconcile on the race.
    """
    for _ in range(2):
        try:
            return kube.create(object_path(body), body), True
        except KubeError as err:
            if not err.conflict:
                raise
        existing = kube.get_or_none(object_path(body, body["metadata"]["name"]))
        if existing is not None:
            return existing, False
    name = f"{body['kind']} {body['metadata']['name']}"
    raise KubeError(409, "Conflict", f"{name} was deleted each time it was found to exist; retry later")


def ensure_all(kube: Kube, bodies: Sequence[JsonDict]) -> list[tuple[JsonDict, bool]]:
    """`ensure` objects that do not depend on each other, side by side: one round trip instead of one per
    object. All are tried; the first error (in the order of `bodies`) is raised."""
    if len(bodies) < 2:
        return [ensure(kube, body) for body in bodies]
    futures = [_POOL.submit(ensure, kube, body) for body in bodies]
    wait(futures)
    return [future.result() for future in futures]
