"""The runs a schedule starts: manifests, names, input templates and history limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agency_operator.triggers.history import (
    FinishedRun,
    active_run_names,
    finished_run,
    runs_to_delete,
)
from agency_operator.triggers.runs import build_run_for_signal, build_run_for_slot, signal_run_name
from agency_operator.triggers.signals.event import Signal
from agency_operator.triggers.template import render_input
from agency_runtime.api.run import AgentRun
from agency_runtime.api.schedule import AgentSchedule

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def schedule(input_text: str = "", name: str = "coldchain") -> AgentSchedule:
    return AgentSchedule.model_validate(
        {
            "metadata": {"name": name, "namespace": "ops", "uid": "0b8f3a1e-1111-4000-8000-000000000002"},
            "spec": {
                "agentRef": {"name": "quality"},
                "cron": "0 * * * *",
                "input": input_text,
                "signals": [{"name": "hot", "type": "com.example.temperature"}],
            },
        }
    )


READING = Signal(
    id="evt-17",
    source="/sensors/truck-4",
    type="com.example.temperature",
    subject="lot-889",
    time=datetime(2026, 3, 2, 9, 14, 3, tzinfo=UTC),
    data={"celsius": 9.5, "lot": {"id": "L-889"}, "readings": [7.1, 9.5]},
)


def test_slot_run_is_a_valid_agentrun_owned_by_the_schedule_and_labelled_with_it() -> None:
    manifest = build_run_for_slot(schedule("Hourly check at {{ scheduledTime }}"), T0)
    run = AgentRun.model_validate(manifest)  # what the CRD schema would accept
    assert run.spec.input == "Hourly check at 2026-03-02T09:00:00Z"
    assert manifest["spec"]["trigger"] == {"type": "Schedule", "scheduleRef": {"name": "coldchain"}}
    assert manifest["metadata"]["labels"]["agency.dev/schedule"] == "coldchain"
    assert manifest["metadata"]["annotations"]["agency.dev/scheduled-time"] == "2026-03-02T09:00:00Z"
    (owner,) = manifest["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("AgentSchedule", "coldchain", True)
    assert manifest["metadata"]["name"] == f"coldchain-{int(T0.timestamp()) // 60}"


def test_signal_run_carries_the_event_and_renders_its_data_into_the_input() -> None:
    template = (
        "Lot {{ signal.data.lot.id }} at {{signal.data.celsius}}C"
        " (second reading {{ signal.data.readings.1 }}) from {{ signal.source }},"
        " {{ signal.type }}, subject {{ signal.subject }}"
    )
    manifest = build_run_for_signal(schedule(template), "hot", READING, T0)
    run = AgentRun.model_validate(manifest)
    assert run.spec.input == (
        "Lot L-889 at 9.5C (second reading 9.5) from /sensors/truck-4, com.example.temperature,"
        " subject lot-889"
    )
    assert manifest["spec"]["trigger"] == {
        "type": "Signal",
        "scheduleRef": {"name": "coldchain"},
        "signal": {
            "id": "evt-17",
            "type": "com.example.temperature",
            "source": "/sensors/truck-4",
            "time": "2026-03-02T09:14:03Z",
        },
    }
    assert manifest["metadata"]["annotations"]["agency.dev/signal-trigger"] == "hot"


def test_the_same_event_always_names_the_same_run_and_different_events_different_runs() -> None:
    first = signal_run_name("coldchain", "/sensors/truck-4", "evt-17")
    assert first == signal_run_name("coldchain", "/sensors/truck-4", "evt-17")
    assert first != signal_run_name("coldchain", "/sensors/truck-4", "evt-18")
    assert first != signal_run_name("coldchain", "/sensors/truck-5", "evt-17")
    assert first != signal_run_name("other", "/sensors/truck-4", "evt-17")


def test_signal_run_names_fit_a_dns_label_for_the_longest_schedule_name() -> None:
    name = signal_run_name("s" * 52, "/x", "1")
    assert len(name) == 63
    assert AgentRun.model_validate(
        {"metadata": {"name": name}, "spec": {"agentRef": {"name": "a"}}}
    ).metadata.name.startswith("s" * 52 + "-")


def test_template_substitutes_strings_only_and_never_evaluates() -> None:
    variables: dict[str, Any] = {
        "schedule": "s",
        "signal": {"id": "1", "data": {"x": "{{ schedule }}", "n": None, "flag": True, "obj": {"a": [1]}}},
    }
    rendered = render_input(
        "{{ signal.data.x }}|{{ signal.data.n }}|{{ signal.data.flag }}|{{ signal.data.obj }}"
        "|{{ signal.data.missing.deep }}|{{ __import__('os') }}|{{ signal.data.x.__class__ }}",
        variables,
    )
    assert rendered == "{{ schedule }}||true|{\"a\":[1]}||{{ __import__('os') }}|"


def test_template_leaves_unknown_placeholders_as_written_so_typos_show() -> None:
    assert render_input("{{ schedul }} {{ signal.id }}", {"schedule": "s"}) == "{{ schedul }} {{ signal.id }}"


def test_template_output_is_cut_to_the_agentrun_input_limit() -> None:
    rendered = render_input("{{ signal.data }}", {"signal": {"data": "x" * 100_000}})
    assert len(rendered) == 65536


def _run(name: str, phase: str | None, completed: datetime | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if completed:
        status["completionTime"] = completed.isoformat().replace("+00:00", "Z")
    return {"metadata": {"name": name, "creationTimestamp": "2026-03-01T00:00:00Z"}, "status": status}


def test_active_runs_are_the_unfinished_ones_including_those_without_a_phase_yet() -> None:
    runs = [
        _run("a", "Running"),
        _run("b", "Succeeded", T0),
        _run("c", None),
        _run("d", "WaitingForApproval"),
    ]
    runs.append(
        {**_run("e", "Running"), "metadata": {"name": "e", "deletionTimestamp": "2026-03-02T00:00:00Z"}}
    )
    assert active_run_names(runs) == ["a", "c", "d"]


def test_history_keeps_the_newest_runs_within_the_success_and_failure_limits() -> None:
    runs = [
        _run("ok-1", "Succeeded", T0),
        _run("ok-2", "Succeeded", T0 + timedelta(minutes=1)),
        _run("ok-3", "Succeeded", T0 + timedelta(minutes=2)),
        _run("ok-4", "Succeeded", T0 + timedelta(minutes=3)),
        _run("bad-1", "Failed", T0),
        _run("bad-2", "BudgetExceeded", T0 + timedelta(minutes=5)),
        _run("bad-3", "Cancelled", T0 + timedelta(minutes=4)),
        _run("busy", "Running"),
    ]
    finished = [f for f in map(finished_run, runs) if f is not None]
    assert runs_to_delete(finished, successful_limit=3, failed_limit=1) == ["bad-1", "ok-1", "bad-3"]


def test_history_limit_zero_deletes_every_finished_run_of_that_kind() -> None:
    finished = [FinishedRun("a", True, T0), FinishedRun("b", False, T0)]
    assert runs_to_delete(finished, successful_limit=0, failed_limit=5) == ["a"]
