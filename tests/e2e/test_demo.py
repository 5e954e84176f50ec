"""`make demo` is what a newcomer runs first: it must keep working end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_cold_chain_agent_through_approval_to_success_and_prints_its_trace() -> None:
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO / "tests"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        AGENCY_DEMO_TARGET="testbed",  # also where Docker and kind are installed: see test_demo_kind.py
    )
    done = subprocess.run(
        [sys.executable, "-m", "agency_testbed.demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "phase=WaitingForApproval" in out
    assert "Approved proposal" in out
    assert "phase=Succeeded" in out
    assert "'dispatches': 1" in out
    assert "execute_tool dispatch_technician" in out
    assert "cold-chain-monitor      1" in out
