"""Reads shared between reconciles, where sharing never makes a decision older than the rule allows.

The rule for admitting a run: it is decided on what the API server held *after the run was created*
(so a policy tightened a moment before a run is created governs that run). A read sent after the
operator's watch first showed the run satisfies it, whichever reconcile sent it. In a burst, thousands
of runs of a few hundred Agents wait their turn on the work queue, and each one read its Agent, its
namespace's policies and the model Secret again: about four of a run's fifteen requests.

`FreshReads.get(path, since, fetch)` answers with a read of `path` that was *sent* at or after `since`
(monotonic seconds): one in flight (the caller waits for its answer) or one answered a moment ago, else
it sends one. A run's `since` is when the watch first showed it (`seen.RunHint.seen_at`); only its first
admission uses it: a run that waits on a refusal (no Agent, no Secret) reads live every time after, so
what it waits for is seen as soon as it exists. Nothing is ever answered from before its `since`.

A failed read is not shared with later callers (those in flight with it get its error, as a request of
their own at the same moment would have). Answers are kept `max_age` seconds: a run seen longer ago is
satisfied by any answer younger than that, so nothing is lost by forgetting older ones. Answers are the
parsed JSON the API server sent, shared between threads: callers only read them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True)
class _Read:
    sent: float
    answer: Future[Any]


class FreshReads:
    """Reads by path, each shared with every caller whose `since` it was sent after (see module doc)."""

    def __init__(self, max_age: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._reads: dict[str, _Read] = {}
        self._guard = threading.Lock()
        self._swept = clock()
        self.sent = 0
        self.shared = 0

    def get(self, path: str, since: float, fetch: Callable[[], T]) -> T:
        """`fetch()`'s answer for `path`, from a read sent at or after `since` (this one if none was)."""
        with self._guard:
            read = self._reads.get(path)
            shared = read is not None and read.sent >= since
            if shared and read is not None:
                self.shared += 1
            else:
                now = self.clock()  # taken before the request goes out: `sent` is never later than it
                self._sweep(now)
                read = self._reads[path] = _Read(now, Future())
                self.sent += 1
        if shared:
            return cast(T, read.answer.result())
        try:
            answer = fetch()
        except BaseException as err:
            with self._guard:
                if self._reads.get(path) is read:
                    del self._reads[path]
            read.answer.set_exception(err)
            raise
        read.answer.set_result(answer)
        return answer

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.max_age:
            return
        self._swept = now
        old = [
            path
            for path, read in self._reads.items()
            if now - read.sent > self.max_age and read.answer.done()
        ]
        for path in old:
            del self._reads[path]

    def __len__(self) -> int:
        with self._guard:
            return len(self._reads)
