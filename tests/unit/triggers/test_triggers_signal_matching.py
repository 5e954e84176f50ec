"""Which events concern a trigger: type/source filters, CEL significance, thresholds, and dispatch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from triggers_fakes import FakeRuns, FakeSchedules, run_async

from agency_operator.triggers.signals.dispatch import Outcome, SignalDispatcher
from agency_operator.triggers.signals.event import Signal
from agency_operator.triggers.signals.matching import (
    SignificanceError,
    ThresholdWindows,
    is_significant,
    pattern_matches,
    significance_errors,
)
from agency_runtime.api.schedule import AgentSchedule, Threshold


def hot(celsius: float, event_id: str = "e1", source: str = "/sensors/truck-4") -> Signal:
    return Signal(
        id=event_id,
        source=source,
        type="com.example.coldchain.temperature",
        subject="lot-889",
        time=datetime(2026, 3, 2, 9, 14, tzinfo=UTC),
        data={"celsius": celsius, "lot": "L-889"},
    )


def test_type_and_source_filters_match_exactly_or_by_prefix_with_a_star() -> None:
    assert pattern_matches("com.example.coldchain.*", "com.example.coldchain.temperature")
    assert not pattern_matches("com.example.coldchain.*", "com.example.billing.invoice")
    assert pattern_matches("com.example.x", "com.example.x")
    assert not pattern_matches("com.example.x", "com.example.xy")
    assert pattern_matches(None, "anything")


def test_significance_expression_decides_on_the_event_data() -> None:
    assert is_significant("data.celsius > 8.0", hot(9.5))
    assert not is_significant("data.celsius > 8.0", hot(7.0))
    assert is_significant("data.celsius > 8", hot(9))
    assert is_significant(None, hot(1.0))


def test_significance_sees_type_source_subject_id_and_time() -> None:
    expression = (
        'type.startsWith("com.example.") && source == "/sensors/truck-4" && subject == "lot-889"'
        ' && id == "e1" && time > timestamp("2026-01-01T00:00:00Z")'
    )
    assert is_significant(expression, hot(0))


def test_an_expression_that_does_not_compile_is_a_clear_error_naming_the_problem() -> None:
    with pytest.raises(SignificanceError, match="does not compile"):
        is_significant("data.celsius >", hot(9.5))
    assert significance_errors("data.celsius >")
    assert significance_errors("data.celsius > 8.0") == []


def test_an_expression_over_a_missing_field_is_an_error_not_a_crash() -> None:
    with pytest.raises(SignificanceError, match=r"failed on event 'e1'.*humidity"):
        is_significant("data.humidity > 80", hot(9.5))
    assert not is_significant("has(data.humidity) && data.humidity > 80", hot(9.5))


def test_an_expression_that_is_not_boolean_is_refused() -> None:
    with pytest.raises(SignificanceError, match="must be true or false"):
        is_significant("data.celsius", hot(9.5))


def test_threshold_fires_on_the_nth_significant_event_within_the_window_then_starts_over() -> None:
    windows = ThresholdWindows()
    key = ("ops", "coldchain", "hot")
    rule = Threshold(count=3, window_seconds=60)
    assert windows.record(key, hot(9, "a"), rule, 0.0) == (False, 1)
    assert windows.record(key, hot(9, "b"), rule, 30.0) == (False, 2)
    assert windows.record(key, hot(9, "c"), rule, 59.0) == (True, 3)
    assert windows.record(key, hot(9, "d"), rule, 60.0) == (False, 1)


def test_threshold_forgets_events_older_than_the_window() -> None:
    windows = ThresholdWindows()
    key = ("ops", "coldchain", "hot")
    rule = Threshold(count=2, window_seconds=10)
    assert windows.record(key, hot(9, "a"), rule, 0.0) == (False, 1)
    assert windows.record(key, hot(9, "b"), rule, 10.5) == (False, 1)
    assert windows.record(key, hot(9, "c"), rule, 15.0) == (True, 2)


def test_threshold_counts_a_redelivered_event_once() -> None:
    windows = ThresholdWindows()
    key = ("ops", "coldchain", "hot")
    rule = Threshold(count=2, window_seconds=60)
    assert windows.record(key, hot(9, "a"), rule, 0.0) == (False, 1)
    assert windows.record(key, hot(9, "a"), rule, 1.0) == (False, 1)
    assert windows.record(key, hot(9, "b"), rule, 2.0) == (True, 2)


def schedule(name: str = "coldchain", **spec: Any) -> AgentSchedule:
    trigger: dict[str, Any] = {
        "name": "hot",
        "type": "com.example.coldchain.*",
        "significance": "data.celsius > 8.0",
    }
    trigger.update(spec.pop("trigger", {}))
    return AgentSchedule.model_validate(
        {
            "metadata": {"name": name, "namespace": "ops", "uid": f"uid-{name}"},
            "spec": {
                "agentRef": {"name": "quality"},
                "input": "Lot {{ signal.data.lot }} is at {{ signal.data.celsius }}C",
                "signals": [trigger],
                **spec,
            },
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def dispatcher(runs: FakeRuns, *schedules: AgentSchedule, clock: Clock | None = None) -> SignalDispatcher:
    return SignalDispatcher(FakeSchedules({"ops": list(schedules)}), runs, clock=clock or Clock())


def test_a_significant_event_starts_one_run_with_the_event_in_its_input() -> None:
    runs = FakeRuns()
    results = run_async(dispatcher(runs, schedule()).dispatch("ops", hot(9.5)))
    assert [r.outcome for r in results] == [Outcome.CREATED]
    ((_, manifest),) = runs.runs.items()
    assert manifest["spec"]["input"] == "Lot L-889 is at 9.5C"
    assert manifest["spec"]["trigger"]["signal"]["id"] == "e1"
    assert results[0].run == manifest["metadata"]["name"]


def test_an_insignificant_event_starts_nothing() -> None:
    runs = FakeRuns()
    results = run_async(dispatcher(runs, schedule()).dispatch("ops", hot(4.0)))
    assert [r.outcome for r in results] == [Outcome.INSIGNIFICANT]
    assert runs.runs == {}


def test_the_same_event_delivered_three_times_starts_one_run_and_names_it_each_time() -> None:
    runs = FakeRuns()
    d = dispatcher(runs, schedule(concurrencyPolicy="Allow"))
    answers = [run_async(d.dispatch("ops", hot(9.5))) for _ in range(3)]
    assert [a[0].outcome for a in answers] == [Outcome.CREATED, Outcome.EXISTS, Outcome.EXISTS]
    assert len({a[0].run for a in answers}) == 1
    assert len(runs.runs) == 1


def test_a_redelivery_while_its_run_is_active_under_forbid_is_reported_as_existing_not_skipped() -> None:
    runs = FakeRuns()
    d = dispatcher(runs, schedule())  # Forbid is the default
    first = run_async(d.dispatch("ops", hot(9.5)))
    again = run_async(d.dispatch("ops", hot(9.5)))
    assert again[0].outcome == Outcome.EXISTS
    assert again[0].run == first[0].run


def test_forbid_skips_a_new_event_while_the_schedules_run_is_active() -> None:
    runs = FakeRuns()
    d = dispatcher(runs, schedule())
    run_async(d.dispatch("ops", hot(9.5, "e1")))
    results = run_async(d.dispatch("ops", hot(9.9, "e2")))
    assert results[0].outcome == Outcome.SKIPPED
    assert "Forbid" in results[0].message
    assert len(runs.runs) == 1


def test_replace_cancels_the_active_run_and_starts_the_new_one() -> None:
    runs = FakeRuns()
    d = dispatcher(runs, schedule(concurrencyPolicy="Replace"))
    (first,) = run_async(d.dispatch("ops", hot(9.5, "e1")))
    (second,) = run_async(d.dispatch("ops", hot(9.9, "e2")))
    assert second.outcome == Outcome.CREATED
    assert runs.cancelled == [first.run]
    assert runs.names() == [second.run]


def test_a_suspended_schedule_starts_nothing_from_signals() -> None:
    runs = FakeRuns()
    results = run_async(dispatcher(runs, schedule(suspend=True)).dispatch("ops", hot(9.5)))
    assert [r.outcome for r in results] == [Outcome.SUSPENDED]
    assert runs.runs == {}


def test_a_broken_expression_in_one_schedule_does_not_stop_the_others() -> None:
    runs = FakeRuns()
    broken = schedule("broken", trigger={"significance": "data.celsius >"})
    results = run_async(dispatcher(runs, broken, schedule("good")).dispatch("ops", hot(9.5)))
    by_schedule = {r.schedule: r for r in results}
    assert by_schedule["broken"].outcome == Outcome.ERROR
    assert "does not compile" in by_schedule["broken"].message
    assert by_schedule["good"].outcome == Outcome.CREATED


def test_events_of_other_types_are_not_mentioned() -> None:
    runs = FakeRuns()
    other = Signal(id="x", source="/billing", type="com.example.billing.invoice", data={"celsius": 99})
    assert run_async(dispatcher(runs, schedule()).dispatch("ops", other)) == []


def test_a_threshold_trigger_starts_a_run_only_on_the_nth_event_in_the_window() -> None:
    runs, clock = FakeRuns(), Clock()
    d = dispatcher(runs, schedule(trigger={"threshold": {"count": 3, "windowSeconds": 300}}), clock=clock)
    outcomes = []
    for n in range(3):
        clock.now = n * 60.0
        outcomes.append(run_async(d.dispatch("ops", hot(9.5, f"e{n}")))[0].outcome)
    assert outcomes == [Outcome.BELOW_THRESHOLD, Outcome.BELOW_THRESHOLD, Outcome.CREATED]
    assert len(runs.runs) == 1
    # The event that fired, delivered again, finds its run instead of counting towards the next one.
    assert run_async(d.dispatch("ops", hot(9.5, "e2")))[0].outcome == Outcome.EXISTS


def test_a_matching_event_records_when_it_arrived_and_an_unrelated_one_does_not() -> None:
    arrived = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    index = FakeSchedules({"ops": [schedule()]})
    d = SignalDispatcher(index, FakeRuns(), clock=Clock(), wall_clock=lambda: arrived)
    run_async(d.dispatch("ops", Signal(id="x", source="/billing", type="com.example.billing.invoice")))
    assert index.signal_times == {}
    run_async(d.dispatch("ops", hot(4.0)))  # matches the trigger, though not significant
    assert index.signal_times == {("ops", "coldchain"): arrived}
