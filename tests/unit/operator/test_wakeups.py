"""Wake-ups: a schedule is reconciled again when its next slot comes, once per arm, the latest arm winning."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from agency_operator.wakeups import Wakeups


class Woken:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, key: str) -> None:
        with self.changed:
            self.keys.append(key)
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.keys) >= count, timeout=10), self.keys
            return list(self.keys)


@pytest.fixture
def woken() -> Iterator[tuple[Woken, Wakeups]]:
    calls = Woken()
    wakeups = Wakeups(calls)
    yield calls, wakeups
    wakeups.stop()


def test_each_key_is_woken_once_in_the_order_of_its_time(woken: tuple[Woken, Wakeups]) -> None:
    calls, wakeups = woken
    wakeups.arm("ns/later", 0.2)
    wakeups.arm("ns/sooner", 0.0)
    assert calls.wait_for(2) == ["ns/sooner", "ns/later"]
    assert wakeups.pending() == 0


def test_arming_a_key_again_replaces_its_wakeup(woken: tuple[Woken, Wakeups]) -> None:
    calls, wakeups = woken
    wakeups.arm("ns/every-minute", 3600)
    wakeups.arm("ns/every-minute", 0.05)
    wakeups.arm("ns/other", 0.1)
    assert calls.wait_for(2) == ["ns/every-minute", "ns/other"]
    assert wakeups.pending() == 0


def test_arming_once_keeps_the_pending_wakeup_so_asks_cannot_postpone_it(
    woken: tuple[Woken, Wakeups],
) -> None:
    calls, wakeups = woken
    wakeups.arm_once("ns/agent", 0.1)
    wakeups.arm_once("ns/agent", 3600)  # a later ask while one is pending: the earlier one stands
    wakeups.arm_once("ns/agent", 3600)
    assert calls.wait_for(1) == ["ns/agent"]
    assert wakeups.pending() == 0
    wakeups.arm_once("ns/agent", 0.0)  # once it fired, the next ask arms again
    assert calls.wait_for(2) == ["ns/agent", "ns/agent"]


def test_a_failing_wakeup_does_not_stop_the_others() -> None:
    calls = Woken()

    def action(key: str) -> None:
        calls(key)
        if key == "ns/broken":
            raise RuntimeError("the API server is away")

    wakeups = Wakeups(action)
    try:
        wakeups.arm("ns/broken", 0)
        calls.wait_for(1)
        wakeups.arm("ns/fine", 0)
        assert calls.wait_for(2) == ["ns/broken", "ns/fine"]
    finally:
        wakeups.stop()


def test_after_stop_nothing_is_woken() -> None:
    calls = Woken()
    wakeups = Wakeups(calls)
    wakeups.arm("ns/pending", 0.2)
    wakeups.stop()
    wakeups.arm("ns/late", 0)
    assert wakeups.pending() == 1  # the one armed before stop stays unrun; arms after stop are ignored
    assert calls.keys == []
