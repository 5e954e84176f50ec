"""The watch hints a run's admission reads beside the run: what they remember and when they forget."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from operator_objects import NAMESPACE, RUN_UID, run_body

from agency_operator.seen import RunHint, Seen
from agency_operator.tally import RunTally


def _agent(*secrets: str) -> dict[str, Any]:
    fallbacks = [
        {"name": "openai/backup", "credentialsSecretRef": {"name": s, "key": "apiKey"}} for s in secrets[1:]
    ]
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "helper", "namespace": NAMESPACE},
        "spec": {
            "model": {
                "name": "openai/triage",
                "credentialsSecretRef": {"name": secrets[0], "key": "apiKey"},
                "fallbacks": fallbacks,
            },
            "instructions": "Help.",
        },
    }


def _timeless(hint: RunHint | None) -> RunHint | None:
    """The hint without what a test cannot know in advance (when it was seen) or does not look at."""
    return None if hint is None else replace(hint, seen_at=0.0, watched=None, updated_at=0.0)


def _at(body: dict[str, Any], version: str, **status: Any) -> dict[str, Any]:
    return body | {"metadata": body["metadata"] | {"resourceVersion": version}, "status": status}


def test_a_run_hint_keeps_when_the_run_was_first_seen_until_another_run_takes_the_name() -> None:
    seen = Seen()
    before = time.monotonic()
    seen.run_seen(run_body())
    first = seen.run(NAMESPACE, "r1")
    assert first is not None
    assert before <= first.seen_at <= time.monotonic()
    seen.run_seen(run_body() | {"status": {"phase": "Pending"}})  # a later event of the same run
    later = seen.run(NAMESPACE, "r1")
    assert later is not None
    assert (later.phase, later.seen_at) == ("Pending", first.seen_at)
    replaced = run_body()
    replaced["metadata"]["uid"] = "another-run-of-that-name"
    seen.run_seen(replaced)
    other = seen.run(NAMESPACE, "r1")
    assert other is not None
    assert other.seen_at > first.seen_at


def test_an_agent_hint_names_each_secret_its_models_read_once() -> None:
    seen = Seen()
    seen.agent_seen(_agent("primary", "backup", "primary"))
    assert seen.agent_secrets(NAMESPACE, "helper") == ("backup", "primary")
    assert seen.agent_secrets(NAMESPACE, "other") is None


def test_an_agent_the_models_refuse_or_deleted_leaves_no_hint() -> None:
    seen = Seen()
    seen.agent_seen(_agent("primary"))
    broken = _agent("primary")
    broken["spec"]["model"] = {"name": 42}
    seen.agent_seen(broken)
    assert seen.agent_secrets(NAMESPACE, "helper") is None
    seen.agent_seen(_agent("primary"))
    seen.agent_gone((NAMESPACE, "helper"))
    assert seen.agent_secrets(NAMESPACE, "helper") is None


def test_a_run_hint_says_whether_the_run_was_past_admission() -> None:
    seen = Seen()
    body = run_body(parentRunRef={"name": "lead"})
    seen.run_seen(body)
    assert _timeless(seen.run(NAMESPACE, "r1")) == RunHint(
        uid=RUN_UID, agent="helper", parent="lead", past_admission=False
    )
    body["status"] = {"startTime": "2026-12-02T10:00:00Z"}
    seen.run_seen(body)
    hint = seen.run(NAMESPACE, "r1")
    assert hint is not None
    assert hint.past_admission
    seen.run_seen(run_body(name="refused") | {"status": {"phase": "Failed"}})  # a budget above its policy's
    refused = seen.run(NAMESPACE, "refused")
    assert refused is not None
    assert refused.past_admission
    seen.run_gone((NAMESPACE, "r1"))
    seen.run_gone((NAMESPACE, "refused"))
    assert seen.run(NAMESPACE, "r1") is None
    assert seen.sizes() == (0, 0)


def test_a_status_the_operator_wrote_moves_the_hint_of_that_run_only() -> None:
    seen = Seen()
    body = run_body()
    seen.run_seen(body)
    status = {"phase": "Pending", "startTime": "2026-12-02T10:00:00Z"}
    seen.run_written(body, status, _at(body, "7", **status))
    assert _timeless(seen.run(NAMESPACE, "r1")) == RunHint(
        uid=RUN_UID, agent="helper", parent=None, past_admission=True, phase="Pending", written="7"
    )
    replaced = run_body()
    replaced["metadata"]["uid"] = "another-run-of-that-name"
    seen.run_written(replaced, {"phase": "Failed"}, _at(replaced, "8"))  # not that run: left as it is
    hint = seen.run(NAMESPACE, "r1")
    assert hint is not None
    assert hint.phase == "Pending"


def test_only_the_event_of_the_operators_own_status_write_is_an_echo() -> None:
    seen = Seen()
    body = _at(run_body(), "5")
    seen.run_seen(body)
    seen.run_written(body, {"phase": "Pending"}, _at(body, "6", phase="Pending"))
    assert seen.run_is_echo(_at(body, "6", phase="Pending"))
    assert not seen.run_is_echo(_at(body, "7", phase="Pending"))  # someone else changed it after
    assert not seen.run_is_echo(_at(body, "5"))
    other = _at(run_body(), "6", phase="Pending")
    other["metadata"]["uid"] = "another-run-of-that-name"
    assert not seen.run_is_echo(other)

    agent = _agent("primary") | {
        "metadata": {"name": "helper", "namespace": NAMESPACE, "resourceVersion": "9"}
    }
    assert not seen.agent_is_echo(agent)
    seen.agent_written(agent)
    assert seen.agent_is_echo(agent)
    seen.agent_gone((NAMESPACE, "helper"))
    assert not seen.agent_is_echo(agent)
    assert seen.sizes() == (0, 1)


def _pod(version: str, owner_uid: str = RUN_UID) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "agency-run-r1",
            "namespace": NAMESPACE,
            "resourceVersion": version,
            "ownerReferences": [{"kind": "AgentRun", "name": "r1", "uid": owner_uid}],
        }
    }


def test_only_the_event_of_the_pod_as_its_create_answered_is_an_echo() -> None:
    seen = Seen()
    body = _at(run_body(), "5")
    seen.pod_created(body, "40")  # a run never seen: nothing to remember it on
    assert not seen.pod_is_echo(_pod("40"), "r1")
    seen.run_seen(body)
    assert not seen.pod_is_echo(_pod("40"), "r1")
    seen.pod_created(body, "40")
    seen.run_seen(_at(body, "6", phase="Pending"))  # the run's next event keeps it
    assert seen.pod_is_echo(_pod("40"), "r1")
    assert not seen.pod_is_echo(_pod("41"), "r1")  # scheduled, started, ...: the mirror must see it
    assert not seen.pod_is_echo(_pod("40"), "r2")
    assert not seen.pod_is_echo(_pod("40", owner_uid="an-earlier-run-of-that-name"), "r1")
    seen.run_gone((NAMESPACE, "r1"))
    assert not seen.pod_is_echo(_pod("40"), "r1")


def test_a_run_event_says_when_what_its_agent_counts_moved() -> None:
    seen = Seen()
    body = run_body()
    assert seen.run_seen(_at(body, "1"))  # a new run: its Agent has one more in flight
    assert not seen.run_seen(_at(body, "2"))  # a label, an annotation: nothing the Agent counts
    assert seen.run_seen(_at(body, "3", phase="Pending", startTime="2026-12-03T06:00:00Z"))
    seen.run_written(body, {"phase": "Running"}, _at(body, "4", phase="Running"))
    assert seen.run_seen(_at(body, "4", phase="Running"))  # the operator's own write moves it too
    assert seen.run_seen(_at(body, "5", phase="Running", usage={"inputTokens": 10}))
    assert not seen.run_seen(_at(body, "6", phase="Running", usage={"inputTokens": 10}))


def _run(name: str, agent: str = "helper", uid: str | None = None, **status: Any) -> dict[str, Any]:
    body = run_body(name=name, agent=agent)
    body["metadata"]["uid"] = uid or f"uid-{name}"
    return body | {"status": status}


def _names(tallies: list[RunTally] | None) -> list[str] | None:
    return None if tallies is None else sorted(t.name for t in tallies)


def test_an_agents_runs_are_counted_from_the_watch_only_once_they_were_all_listed() -> None:
    seen = Seen()
    seen.run_seen(_run("r1"))
    assert seen.tallies(NAMESPACE, "helper") is None  # the watch may not have shown every run yet
    listed = seen.tally_listed(NAMESPACE, "helper", [_run("r0"), _run("r1")], time.monotonic())
    assert _names(listed) == ["r0", "r1"]
    seen.run_seen(_run("r2"))
    seen.run_seen(_run("x1", agent="other"))  # another Agent's run is not this one's
    assert _names(seen.tallies(NAMESPACE, "helper")) == ["r0", "r1", "r2"]
    assert seen.tallies(NAMESPACE, "other") is None
    seen.run_gone((NAMESPACE, "r0"))
    assert _names(seen.tallies(NAMESPACE, "helper")) == ["r1", "r2"]
    seen.agent_gone((NAMESPACE, "helper"))  # an Agent made again later lists its runs again
    assert seen.tallies(NAMESPACE, "helper") is None


def test_a_list_answered_before_what_the_watch_showed_changes_nothing_the_watch_showed() -> None:
    seen = Seen()
    sent_at = time.monotonic()
    seen.run_seen(_run("r1", phase="Succeeded", startTime="2026-12-04T10:00:00Z"))  # newer than the list
    seen.run_seen(_run("gone"))
    seen.run_gone((NAMESPACE, "gone"))  # deleted after the list was answered
    stale = [_run("r1", phase="Pending"), _run("gone")]
    listed = seen.tally_listed(NAMESPACE, "helper", stale, sent_at)
    assert [(t.name, t.phase, t.finished) for t in listed] == [("r1", "Succeeded", True)]


def test_a_run_the_list_of_every_name_no_longer_holds_is_forgotten_and_its_agent_named() -> None:
    seen = Seen()
    seen.tally_listed(NAMESPACE, "helper", [_run("r1"), _run("r2")], time.monotonic())
    sent_at = time.monotonic()
    seen.run_seen(_run("r3"))  # created after the list was sent: not in it, and kept
    assert seen.prune(NAMESPACE, {(NAMESPACE, "r1")}, sent_at) == {(NAMESPACE, "helper")}
    assert _names(seen.tallies(NAMESPACE, "helper")) == ["r1", "r3"]
    assert seen.run(NAMESPACE, "r2") is None
    assert seen.prune("elsewhere", set(), time.monotonic()) == set()  # another namespace's list
    assert seen.tally_listed(NAMESPACE, "helper", [_run("r2")], sent_at) is not None
    assert seen.run(NAMESPACE, "r2") is None  # a list from before cannot bring it back


def test_a_name_taken_by_a_run_of_another_agent_moves_to_that_agent() -> None:
    seen = Seen()
    seen.tally_listed(NAMESPACE, "helper", [_run("r1")], time.monotonic())
    seen.tally_listed(NAMESPACE, "other", [], time.monotonic())
    seen.run_gone((NAMESPACE, "r1"))
    seen.run_seen(_run("r1", agent="other", uid="second"))
    assert _names(seen.tallies(NAMESPACE, "helper")) == []
    assert _names(seen.tallies(NAMESPACE, "other")) == ["r1"]


def _condition(status: str, reason: str) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": "m",
        "lastTransitionTime": "2026-12-04T10:00:00Z",
    }


def test_an_agents_readiness_is_what_its_status_said_when_last_seen_or_written() -> None:
    seen = Seen()
    assert seen.agent_ready(NAMESPACE, "helper") is None
    ready = {"conditions": [_condition("True", "Ready")]}
    seen.agent_seen(_agent("primary") | {"status": ready})
    assert seen.agent_ready(NAMESPACE, "helper") is True
    waiting = {"conditions": [_condition("False", "CredentialsNotFound")]}
    seen.agent_written(_agent("primary") | {"status": waiting})
    assert seen.agent_ready(NAMESPACE, "helper") is False
    seen.agent_gone((NAMESPACE, "helper"))
    assert seen.agent_ready(NAMESPACE, "helper") is None
    assert seen.sizes() == (0, 0)
