"""The level-based safety net: every few seconds, reconcile every AgentRun and Agent again.

kopf's timers would do this, but kopf puts a finalizer on every object a timer or daemon watches, so
AgentRuns could not be deleted while the operator is down. Nothing here needs a finalizer (children are
owned by the run; see `handlers`), so the resync is a plain thread started by the startup handler and
stopped by the cleanup handler. Events (`on.event`) stay the fast path; this catches what time alone
changes: TTLs expiring, daily windows rolling, local processes ending, approvals timing out. A started
run whose Pod is watched is passed over but every so often (`runs.resync_due`), and so is a Ready Agent
(`agents.resync_due`); the runs due are put on the handlers' work queue, where a run an event queued
already waits once. Each pass lists the names of every object first; a `listed` hook is given them
(the operator forgets the runs it holds that are gone, `seen.prune`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from agency_operator.kube import Kube, path_for
from agency_runtime.api.meta import API_VERSION

log = logging.getLogger("agency_operator.resync")

Reconcile = Callable[[str, str], object]
#: (namespace or None for the whole cluster, every (namespace, name) listed, monotonic time the list was sent)
Listed = Callable[[str | None, set[tuple[str, str]], float], object]


class Resync:
    """Calls `reconcile(namespace, name)` for every object of each plural, every `interval` seconds."""

    def __init__(
        self,
        kube: Kube,
        namespaces: tuple[str, ...],
        interval: float,
        reconcilers: dict[str, Reconcile],
        listed: Mapping[str, Listed] | None = None,
    ) -> None:
        self.kube = kube
        self.namespaces = namespaces
        self.interval = interval
        self.reconcilers = reconcilers
        self.listed = dict(listed or {})
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="agency-resync", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.interval + 30)

    def once(self) -> None:
        for plural, reconcile in self.reconcilers.items():
            for namespace in self.namespaces or (None,):
                # Names only (each reconcile reads its object afresh anyway), all of them before the first
                # reconcile: the `listed` hook needs the whole list.
                sent_at = time.monotonic()
                names = list(self.kube.names(path_for(API_VERSION, plural, namespace)))
                hook = self.listed.get(plural)
                if hook is not None:
                    hook(namespace, set(names), sent_at)
                for ns, name in names:
                    if self.stopped.is_set():
                        return
                    try:
                        reconcile(ns, name)
                    except Exception:  # one object's failure must not stop the others' resync
                        log.exception("resync of %s %s/%s failed", plural, ns, name)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.once()
            except Exception:  # the API server may be away for a moment; try again next interval
                log.exception("resync pass failed")
