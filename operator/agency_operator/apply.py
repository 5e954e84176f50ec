"""Applying built objects idempotently: create if absent, leave what exists.

Every child of a run has a deterministic name and a spec fixed when the run starts, so "create, and on
409 read what is there" is the whole of idempotency here: a second reconcile, or a restarted operator
finishing a half-done one, changes nothing and duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import TypeVar

from agency_operator.kube import JsonDict, Kube, KubeError, path_for

#: Requests sent beside each reconcile's own: up to this many per reconcile thread. A run's rounds have
#: four requests at most (its reads; its identity, NetworkPolicy and run file), one in the calling thread.
THREADS_PER_WORKER = 2


def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agency-ensure")


#: Shared by every reconcile: the requests of one `ensure_all` go out side by side. Its threads are made
#: as they are first needed; `set_threads` sizes it to the operator's reconcile threads at start-up.
_POOL = _pool(16 * THREADS_PER_WORKER)


def set_threads(workers: int) -> None:
    """Size the shared pool for `workers` reconcile threads (at start-up, before the first reconcile).

    Too small a pool is a queue in front of the API server: with 16 threads for 64 reconcilers, a run's
    requests waited for the pool while the API server had cores to spare."""
    global _POOL
    old, _POOL = _POOL, _pool(max(1, workers * THREADS_PER_WORKER))
    old.shutdown(wait=True)


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


T = TypeVar("T")
U = TypeVar("U")


def side_by_side(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Independent requests (reads or writes) at the same time: one round trip instead of one per call.

    The first call runs in the calling thread, the others on the shared pool, so those must be single
    requests that never wait on the pool themselves (a pool thread waiting on the pool can deadlock it).
    The results are in the order of `calls`; every call runs to its end, then the first error (in that
    order) is raised, so no request is left running behind the caller's back."""
    if len(calls) < 2:
        return [call() for call in calls]
    futures = [_POOL.submit(call) for call in calls[1:]]
    try:
        first = calls[0]()
    finally:
        wait(futures)
    return [first, *(future.result() for future in futures)]


def both(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """Two independent requests of different types at the same time, as `side_by_side`: `first` in the
    calling thread (it may go side by side itself), `second` on the pool (a single request)."""
    future = _POOL.submit(second)
    try:
        result = first()
    finally:
        wait([future])
    return result, future.result()


def ensure_all(kube: Kube, bodies: Sequence[JsonDict]) -> list[tuple[JsonDict, bool]]:
    """`ensure` objects that do not depend on each other, side by side: one round trip instead of one per
    object. All are tried; the first error (in the order of `bodies`) is raised."""
    return side_by_side([partial(ensure, kube, body) for body in bodies])
