"""The real runtime SIGKILLed at random steps, 30 times across a few runs, each restarted until it is done:
every run completes, no step is lost or made twice, no side effect happens twice."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from agency_testbed.llm import ScriptedLLM
from e2e.chaos.report import ChaosReport, Record, seeded
from e2e.chaos.runtime_chaos import KilledRun, kill_points
from unit.runtime.runtime_endpoint import CountingEndpoint

#: Bounded by the waits below; above the default per-test timeout so that a loaded machine is not a failure.
pytestmark = pytest.mark.timeout(600)

KILLS = int(os.environ.get("AGENCY_CHAOS_RUNTIME_KILLS", "30"))
RUNS = 3  # at once: every restart costs a runtime start-up, and two cores share them
STEPS = 6  # model turns per run: five that read and write, then the answer


def test_a_runtime_sigkilled_at_random_steps_completes_without_lost_steps_or_duplicate_effects(
    scripted_llm: ScriptedLLM, tmp_path: Path, chaos_report: Record
) -> None:
    chosen, rng = seeded()
    started = time.monotonic()
    shares = [KILLS // RUNS + (1 if i < KILLS % RUNS else 0) for i in range(RUNS)]
    with ExitStack() as stack:
        runs = [
            KilledRun(i, scripted_llm, stack.enter_context(CountingEndpoint()), tmp_path / f"run-{i}", STEPS)
            for i in range(RUNS)
        ]
        plans = [kill_points(rng, STEPS, share) for share in shares]
        with ThreadPoolExecutor(RUNS) as pool:
            for done in [pool.submit(run.drive, plan) for run, plan in zip(runs, plans, strict=True)]:
                done.result()
        outcomes = [run.outcome() for run in runs]

    report = ChaosReport(
        suite="runtime SIGKILL",
        seed=chosen,
        runs=RUNS,
        completed=sum(o.completed for o in outcomes),
        kills=sum(o.kills for o in outcomes),
        steps_lost=sum(o.steps_lost for o in outcomes),
        repeated_calls=sum(o.repeated_calls for o in outcomes),
        duplicate_side_effects=sum(o.duplicate_side_effects for o in outcomes),
        wall_seconds=time.monotonic() - started,
    )
    chaos_report(report)
    problems = [p for o in outcomes for p in o.problems]
    killed = {run.index: [str(p) for p in run.killed_at] for run in runs}
    assert (report.completed, report.kills) == (RUNS, KILLS), f"seed {chosen}; kills {killed}"
    assert report.zeros() == dict.fromkeys(report.zeros(), 0), f"seed {chosen}; kills {killed}: {problems}"
    assert not problems, f"seed {chosen}: {problems}"
