"""Wake-ups at a given time: how a schedule is reconciled at its next slot rather than at the next resync.

A reconcile of an AgentSchedule knows when its next slot is (`CronPlan.requeue_after`); `arm(key, delay)`
asks for `action(key)` to be called that many seconds later. One pending wake-up per key: arming again
replaces it, so a schedule reconciled by an event, the resync and a wake-up still has one. A single thread
keeps the times; the actions run on a pool as wide as kopf's (16), so schedules due at the same minute
start their runs side by side. Wake-ups are only a faster trigger: the resync still reconciles every
schedule, so one lost with a restart costs at most a resync interval, as before.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("agency_operator.wakeups")


class Wakeups:
    """Calls `action(key)` once per `arm(key, delay)`, `delay` seconds later; the latest arm of a key wins."""

    def __init__(self, action: Callable[[str], object], workers: int = 16) -> None:
        self.action = action
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agency-wakeup")
        self._thread = threading.Thread(target=self._loop, name="agency-wakeups", daemon=True)
        self._thread.start()

    def arm(self, key: str, delay: float) -> None:
        at = time.monotonic() + max(0.0, delay)
        with self._changed:
            if self._stopped:
                return
            self._due[key] = at
            heapq.heappush(self._heap, (at, key))
            self._changed.notify()

    def arm_once(self, key: str, delay: float) -> None:
        """`arm`, unless a wake-up of `key` is pending already: then that earlier one stands. However often
        it is asked for, `key` is acted on at most once per `delay` and never later than `delay` after the
        first ask (a debounce that a steady stream of asks cannot postpone)."""
        with self._changed:
            if key in self._due:
                return
        self.arm(key, delay)

    def pending(self) -> int:
        with self._changed:
            return len(self._due)

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        with self._changed:
            while not self._stopped:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    at, key = heapq.heappop(self._heap)
                    if self._due.get(key) == at:  # not replaced by a later arm
                        del self._due[key]
                        self._pool.submit(self._run, key)
                    continue
                self._changed.wait(self._heap[0][0] - now if self._heap else None)

    def _run(self, key: str) -> None:
        try:
            self.action(key)
        except Exception:  # a failed wake-up is retried by the resync; it must not stop the others
            log.exception("wake-up of %s failed", key)
