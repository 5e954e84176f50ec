"""Independent requests of one reconcile go out together, and an error never leaves one running behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from agency_operator.apply import THREADS_PER_WORKER, both, set_threads, side_by_side


def test_calls_run_at_the_same_time_and_results_keep_their_order() -> None:
    # Each call waits until all three are in flight: one after another, the barrier would break.
    barrier = threading.Barrier(3, timeout=10)

    def call(value: str) -> str:
        barrier.wait()
        return value

    assert side_by_side([lambda: call("agent"), lambda: call("policies"), lambda: call("secret")]) == [
        "agent",
        "policies",
        "secret",
    ]


def test_the_first_error_is_raised_after_every_call_finished() -> None:
    finished: list[str] = []
    started = threading.Barrier(3, timeout=10)

    def fine(name: str) -> str:
        started.wait()
        finished.append(name)
        return name

    def broken(message: str) -> str:
        started.wait()
        raise RuntimeError(message)

    with pytest.raises(RuntimeError, match="first"):
        side_by_side([lambda: broken("first"), lambda: fine("slow"), lambda: broken("second")])
    assert finished == ["slow"]


def test_both_returns_each_result_in_place() -> None:
    barrier = threading.Barrier(2, timeout=10)

    def agent() -> dict[str, str]:
        barrier.wait()
        return {"kind": "Agent"}

    def policies() -> list[str]:
        barrier.wait()
        return ["strict"]

    assert both(agent, policies) == ({"kind": "Agent"}, ["strict"])


def test_both_waits_for_the_second_call_when_the_first_fails() -> None:
    done = threading.Event()
    barrier = threading.Barrier(2, timeout=10)

    def fails() -> None:
        barrier.wait()
        raise LookupError("agent read failed")

    def second() -> str:
        barrier.wait()
        done.set()
        return "policies"

    with pytest.raises(LookupError):
        both(fails, second)
    assert done.is_set()


@pytest.fixture
def forty_reconcilers() -> Iterator[int]:
    workers = 40
    set_threads(workers)
    yield workers
    set_threads(16)


def test_every_reconcile_thread_sends_its_round_at_once_without_waiting_for_the_pool(
    forty_reconcilers: int,
) -> None:
    # Each reconcile thread sends three requests side by side (its own and two on the shared pool), as a
    # run's rounds do; the barrier breaks unless all of them are in flight together.
    per_round = 1 + THREADS_PER_WORKER
    barrier = threading.Barrier(forty_reconcilers * per_round, timeout=10)

    def request() -> str:
        barrier.wait()
        return "answer"

    def reconcile() -> list[str]:
        return side_by_side([request] * per_round)

    with ThreadPoolExecutor(max_workers=forty_reconcilers) as reconcilers:
        rounds = [reconcilers.submit(reconcile) for _ in range(forty_reconcilers)]
        assert all(r.result(timeout=20) == ["answer"] * per_round for r in rounds)
