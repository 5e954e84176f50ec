"""A queue of keys to reconcile, each waiting at most once and never worked on by two threads at once.

Why not let kopf run the run handlers: kopf keeps one task per object with events in flight, and with
sync handlers each such task waits for a thread while holding the event's whole body, its patch, memo
and logger. 5,000 runs and their 5,000 Pods created at once were ~50 KB each in the operator (700 MB),
although a reconcile reads the run afresh and needs only its name. So the AgentRun and Pod handlers
only put the run's key here and return; what waits for a thread is the key.

The semantics are client-go's work queue: a key added while it waits is not added twice (the events of
a run, of its Pod and the resync fold into one reconcile); a key added while a thread works on it is
worked on again once that thread is done, so the change that came meanwhile is seen; keys are taken in
the order they were first added. A failed key is logged and left to the resync, as a failed kopf event
handler was.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("agency_operator.workqueue")

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Calls `work(key)` on `workers` threads for every key `add`ed, folding repeats (see module doc)."""

    def __init__(self, work: Callable[[K], object], workers: int, name: str = "agency-reconcile") -> None:
        if workers < 1:
            raise ValueError(f"a work queue needs at least one worker, got {workers}")
        self.work = work
        self._order: deque[K] = deque()
        self._waiting: set[K] = set()  # in _order, or added again while being worked on
        self._working: set[K] = set()
        self._changed = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def add(self, key: K) -> None:
        """Ask for `key` to be worked on; from any thread, the event loop's too (it never blocks long)."""
        with self._changed:
            if self._stopped or key in self._waiting:
                return
            self._waiting.add(key)
            if key not in self._working:  # else the thread working on it queues it again when done
                self._order.append(key)
                self._changed.notify()

    def __len__(self) -> int:
        """Keys waiting (not those being worked on)."""
        with self._changed:
            return len(self._waiting)

    def busy(self) -> int:
        """Keys being worked on right now."""
        with self._changed:
            return len(self._working)

    def stop(self, timeout: float = 10.0) -> None:
        """Work on nothing new; wait up to `timeout` for the keys being worked on. Waiting keys are
        dropped: every trigger is level-based, and a restarted operator lists every object again."""
        with self._changed:
            self._stopped = True
            self._order.clear()
            self._waiting.clear()
            self._changed.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=timeout)

    def _take(self) -> K | None:
        with self._changed:
            while not self._order and not self._stopped:
                self._changed.wait()
            if self._stopped:
                return None
            key = self._order.popleft()
            self._waiting.discard(key)
            self._working.add(key)
            return key

    def _done(self, key: K) -> None:
        with self._changed:
            self._working.discard(key)
            if key in self._waiting and not self._stopped:  # added while it was worked on
                self._order.append(key)
                self._changed.notify()

    def _loop(self) -> None:
        while (key := self._take()) is not None:
            try:
                self.work(key)
            except Exception:  # one key's failure must not stop the others; the resync tries it again
                log.exception("reconcile of %s failed", key)
            finally:
                self._done(key)
