"""Shared reads: a caller gets a read sent at or after its `since`, never an older one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agency_operator.fresh import FreshReads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Server:
    """Answers each read with a new version, so a test sees which read a caller got."""

    def __init__(self) -> None:
        self.version = 0

    def read(self) -> dict[str, int]:
        self.version += 1
        return {"version": self.version}


def test_a_read_sent_after_the_callers_since_is_shared_and_an_earlier_one_is_not() -> None:
    clock, server = Clock(), Server()
    fresh = FreshReads(clock=clock)
    assert fresh.get("/agents/a", 99.0, server.read) == {"version": 1}  # sent at 100
    clock.now = 101.0
    assert fresh.get("/agents/a", 100.0, server.read) == {"version": 1}  # seen at 100: the read qualifies
    assert fresh.get("/agents/a", 100.5, server.read) == {"version": 2}  # seen after it: read again
    assert fresh.get("/agents/b", 0.0, server.read) == {"version": 3}  # another path is its own read
    assert (fresh.sent, fresh.shared) == (3, 1)


def test_callers_wait_for_a_read_in_flight_instead_of_sending_their_own() -> None:
    fresh, release, entered = FreshReads(), threading.Event(), threading.Event()
    calls = 0

    def slow_read() -> str:
        nonlocal calls
        calls += 1
        entered.set()
        assert release.wait(10)
        return "answer"

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(fresh.get, "/policies", 0.0, slow_read)
        assert entered.wait(10)
        others = [pool.submit(fresh.get, "/policies", 0.0, slow_read) for _ in range(3)]
        release.set()
        answers = [first.result(10), *(o.result(10) for o in others)]
    assert answers == ["answer"] * 4
    assert calls == 1


def test_a_failed_read_reaches_its_waiters_and_is_never_shared_afterwards() -> None:
    fresh, release, entered = FreshReads(), threading.Event(), threading.Event()

    def failing() -> str:
        entered.set()
        assert release.wait(10)
        raise ConnectionError("apiserver restarting")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(fresh.get, "/secrets/key", 0.0, failing)
        assert entered.wait(10)
        waiter = pool.submit(fresh.get, "/secrets/key", 0.0, lambda: "unused")
        release.set()
        for future in (first, waiter):
            with pytest.raises(ConnectionError, match="restarting"):
                future.result(10)
    assert fresh.get("/secrets/key", 0.0, lambda: "read again") == "read again"


def test_answers_older_than_max_age_are_forgotten() -> None:
    clock, server = Clock(), Server()
    fresh = FreshReads(max_age=30.0, clock=clock)
    fresh.get("/agents/old", 0.0, server.read)
    clock.now += 31.0
    fresh.get("/agents/new", 0.0, server.read)  # sweeps: the old answer is older than 30 s
    assert len(fresh) == 1
    assert fresh.get("/agents/old", 0.0, server.read) == {"version": 3}
