"""Which runs and Agents the periodic resync looks at: every one whose next change is not an event, every
interval; the others as a safety net."""

from __future__ import annotations

import pytest

from agency_operator.agents import QUIET_RESYNCS as AGENT_QUIET
from agency_operator.agents import Looked
from agency_operator.agents import resync_due as agent_resync_due
from agency_operator.runs import QUIET_RESYNCS, resync_due
from agency_operator.seen import RunHint

INTERVAL = 10.0
NOW = 10_000.0


def _hint(phase: str | None, started: bool = True) -> RunHint:
    return RunHint(uid="u1", agent="helper", parent=None, past_admission=started, phase=phase)


@pytest.mark.parametrize("phase", ["Pending", "Running"])
def test_a_started_run_waiting_on_its_watched_pod_is_passed_over_until_the_safety_net(phase: str) -> None:
    hint = _hint(phase)
    assert not resync_due(hint, True, NOW - INTERVAL, NOW, INTERVAL)
    assert not resync_due(hint, True, NOW - INTERVAL * (QUIET_RESYNCS - 1), NOW, INTERVAL)
    assert resync_due(hint, True, NOW - INTERVAL * QUIET_RESYNCS, NOW, INTERVAL)


@pytest.mark.parametrize(
    ("hint", "why"),
    [
        (_hint("Pending", started=False), "waiting for admission: a Secret may have appeared"),
        (_hint("WaitingForApproval"), "a proposal times out"),
        (_hint("Succeeded"), "its TTL runs out"),
        (None, "never seen on the watch"),
    ],
)
def test_a_run_whose_next_change_is_not_an_event_is_due_every_interval(
    hint: RunHint | None, why: str
) -> None:
    assert resync_due(hint, True, NOW - INTERVAL, NOW, INTERVAL), why


def test_every_run_of_an_executor_without_events_and_a_run_never_reconciled_are_due() -> None:
    assert resync_due(_hint("Running"), False, NOW - INTERVAL, NOW, INTERVAL)  # a local process's end
    assert resync_due(_hint("Running"), True, None, NOW, INTERVAL)


# ----- Agents ------------------------------------------------------------------------------------------
TODAY = "2026-12-04"


def test_a_ready_agent_is_passed_over_until_the_safety_net() -> None:
    looked = Looked(NOW - INTERVAL, TODAY)
    assert not agent_resync_due(True, looked, NOW, TODAY, INTERVAL)
    assert not agent_resync_due(True, Looked(NOW - INTERVAL * (AGENT_QUIET - 1), TODAY), NOW, TODAY, INTERVAL)
    assert agent_resync_due(True, Looked(NOW - INTERVAL * AGENT_QUIET, TODAY), NOW, TODAY, INTERVAL)


@pytest.mark.parametrize(
    ("ready", "looked", "why"),
    [
        (False, Looked(NOW - INTERVAL, TODAY), "not Ready: it may wait on a Secret, which is not watched"),
        (None, Looked(NOW - INTERVAL, TODAY), "its status never seen"),
        (True, None, "never reconciled by this operator"),
        (True, Looked(NOW - INTERVAL, "2026-12-03"), "the day rolled: its usage today starts again"),
    ],
)
def test_an_agent_whose_status_time_or_an_unwatched_secret_moves_is_due_every_interval(
    ready: bool | None, looked: Looked | None, why: str
) -> None:
    assert agent_resync_due(ready, looked, NOW, TODAY, INTERVAL), why
