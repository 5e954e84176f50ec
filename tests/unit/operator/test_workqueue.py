"""The run work queue: every key reconciled, repeats folded, one thread per key, failures contained."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest

from agency_operator.workqueue import WorkQueue


class Gate:
    """A work function whose calls can be held at the gate, recording who ran and how many at once."""

    def __init__(self, held: set[str] | None = None) -> None:
        self.held = held or set()
        self.release = threading.Event()
        self.calls: list[str] = []
        self.inside: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, key: str) -> None:
        with self.changed:
            self.inside[key] += 1
            if self.inside[key] > 1:
                self.overlaps.append(key)
            self.calls.append(key)
            self.changed.notify_all()
        if key in self.held:
            assert self.release.wait(timeout=10)
        with self.changed:
            self.inside[key] -= 1
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.calls) >= count, timeout=10), self.calls
            return list(self.calls)

    def wait_idle(self, queue: WorkQueue[str]) -> None:
        with self.changed:
            assert self.changed.wait_for(
                lambda: queue.busy() == 0 and len(queue) == 0 and not +self.inside, timeout=10
            )


def test_keys_added_while_they_wait_are_worked_on_once_in_the_order_first_added() -> None:
    gate = Gate(held={"ns/blocker"})
    queue = WorkQueue(gate, workers=1)
    try:
        queue.add("ns/blocker")
        gate.wait_for(1)  # the only thread is held: everything below waits
        for key in ["ns/a", "ns/b", "ns/a", "ns/c", "ns/b", "ns/a"]:
            queue.add(key)
        assert len(queue) == 3
        gate.release.set()
        gate.wait_idle(queue)
        assert gate.calls == ["ns/blocker", "ns/a", "ns/b", "ns/c"]
    finally:
        queue.stop()


def test_a_key_added_while_it_is_worked_on_is_worked_on_again_after_not_beside() -> None:
    gate = Gate(held={"ns/run"})
    queue = WorkQueue(gate, workers=4)
    try:
        queue.add("ns/run")
        gate.wait_for(1)
        queue.add("ns/run")  # a change came while the first reconcile runs: it must be seen
        queue.add("ns/run")
        queue.add("ns/other")  # three idle threads: the other key does not wait for the held one
        assert gate.wait_for(2) == ["ns/run", "ns/other"]
        gate.release.set()
        gate.wait_idle(queue)
        assert gate.calls.count("ns/run") == 2
        assert gate.overlaps == []
    finally:
        queue.stop()


def test_many_threads_adding_the_same_keys_never_work_one_key_twice_at_once() -> None:
    gate = Gate()
    queue = WorkQueue(gate, workers=8)
    keys = [f"ns/run-{i}" for i in range(20)]

    def storm() -> None:
        for _ in range(50):
            for key in keys:
                queue.add(key)

    adders = [threading.Thread(target=storm) for _ in range(4)]
    try:
        for adder in adders:
            adder.start()
        for adder in adders:
            adder.join()
        gate.wait_idle(queue)
        assert set(gate.calls) == set(keys)  # every key reconciled at least once after its last add
        assert gate.overlaps == []
        assert len(gate.calls) < 4 * 50 * len(keys)  # and repeats folded
    finally:
        queue.stop()


def test_a_failing_key_is_logged_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []
    finished = threading.Event()

    def work(key: str) -> None:
        if key == "ns/broken":
            raise RuntimeError("the API server is away")
        done.append(key)
        if len(done) == 2:
            finished.set()

    queue = WorkQueue(work, workers=1)
    try:
        with caplog.at_level(logging.ERROR, logger="agency_operator.workqueue"):
            queue.add("ns/broken")
            queue.add("ns/fine")
            queue.add("ns/also-fine")
            assert finished.wait(timeout=10)
        assert done == ["ns/fine", "ns/also-fine"]
        assert any("ns/broken" in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        queue.stop()


def test_stop_waits_for_the_key_being_worked_on_and_drops_the_waiting_ones() -> None:
    gate = Gate(held={"ns/long"})
    queue = WorkQueue(gate, workers=1)
    queue.add("ns/long")
    gate.wait_for(1)
    queue.add("ns/waiting")
    stopper = threading.Thread(target=queue.stop)
    stopper.start()
    gate.release.set()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    queue.add("ns/after-stop")
    assert gate.calls == ["ns/long"]
    assert len(queue) == 0
    assert queue.busy() == 0


def test_a_queue_without_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WorkQueue(lambda key: None, workers=0)
