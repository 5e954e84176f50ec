"""Independent requests of one reconcile go out together, and an error never leaves one running behind."""

from __future__ import annotations

import threading

import pytest

from agency_operator.apply import both, side_by_side


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
