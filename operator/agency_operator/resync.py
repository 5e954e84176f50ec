"""The level-based safety net: every few seconds, reconcile every AgentRun and Agent again.

kopf's timers would do this, but kopf puts a finalizer on every object a timer or daemon watches, so
AgentRuns could not be deleted while the operator is down. Nothing here needs a finalizer (children are
owned by the run; see `handlers`), so the resync is a plain thread started by the startup handler and
stopped by the cleanup handler. Events (`on.event`) stay the fast path; this catches what time alone
changes: TTLs expiring, daily windows rolling, local processes ending, approvals timing out. A started
run whose Pod is watched is passed over but every so often (`runs.resync_due`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agency_operator.kube import Kube, path_for
from agency_runtime.api.meta import API_VERSION

log = logging.getLogger("agency_operator.resync")

Reconcile = Callable[[str, str], object]


class Resync:
    """Calls `reconcile(namespace, name)` for every object of each plural, every `interval` seconds."""

    def __init__(
        self, kube: Kube, namespaces: tuple[str, ...], interval: float, reconcilers: dict[str, Reconcile]
    ) -> None:
        self.kube = kube
        self.namespaces = namespaces
        self.interval = interval
        self.reconcilers = reconcilers
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
                # Names only, a page at a time: each reconcile reads its object afresh anyway.
                for ns, name in self.kube.names(path_for(API_VERSION, plural, namespace)):
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
