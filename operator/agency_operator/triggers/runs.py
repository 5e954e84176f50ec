"""The AgentRun manifests a schedule starts, for a cron slot or a signal, and their deterministic names.

Pure: the handler creates what these return. The name is the idempotency key: the same slot, or the same
event (`source` + `id`) for the same schedule, always gives the same name, so a second create answers
AlreadyExists and nothing new starts.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from agency_operator.names import TRACEPARENT_ANNOTATION
from agency_operator.triggers.cron import MAX_RUN_NAME, run_name_for_slot
from agency_operator.triggers.history import SCHEDULE_LABEL
from agency_operator.triggers.signals.event import Signal
from agency_operator.triggers.template import render_input
from agency_runtime.api.meta import API_VERSION, JsonObject
from agency_runtime.api.run import TriggerType
from agency_runtime.api.schedule import MAX_SCHEDULE_NAME, AgentSchedule

#: Annotation on a cron run: the slot it was started for, RFC 3339 in UTC.
SCHEDULED_TIME_ANNOTATION = "agency.dev/scheduled-time"
#: Annotation on a signal run: the name of the schedule's signal trigger that fired.
SIGNAL_TRIGGER_ANNOTATION = "agency.dev/signal-trigger"
#: Label on every run a schedule starts: `schedule` or `signal`.
TRIGGER_LABEL = "agency.dev/trigger"

_HASH_CHARS = 10  # base32: 50 bits, so two different events of one schedule practically never collide


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def signal_run_name(schedule_name: str, source: str, event_id: str) -> str:
    """The name of the run one event starts for one schedule: `<schedule>-<hash of schedule, source, id>`.

    CloudEvents says `source` + `id` identify an event, so a redelivered event maps to the same run.
    The hash is lowercase base32, which is DNS-safe; with schedule names of at most 52 characters the name
    fits in 63.
    """
    key = "\x00".join((schedule_name, source, event_id)).encode()
    digest = base64.b32encode(hashlib.sha256(key).digest()).decode().lower()[:_HASH_CHARS]
    prefix = schedule_name[: min(MAX_SCHEDULE_NAME, MAX_RUN_NAME - _HASH_CHARS - 1)].rstrip("-")
    return f"{prefix}-{digest}"


def _owner(schedule: AgentSchedule) -> JsonObject:
    if not schedule.metadata.uid:
        raise ValueError(f"AgentSchedule {schedule.metadata.name!r} has no uid; pass the object as read")
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentSchedule",
        "name": schedule.metadata.name,
        "uid": schedule.metadata.uid,
        "controller": True,
    }


def _run(
    schedule: AgentSchedule,
    name: str,
    input_text: str,
    trigger: JsonObject,
    trigger_label: str,
    annotations: dict[str, str],
) -> JsonObject:
    metadata: JsonObject = {
        "name": name,
        "labels": {SCHEDULE_LABEL: schedule.metadata.name, TRIGGER_LABEL: trigger_label},
        "annotations": annotations,
        "ownerReferences": [_owner(schedule)],
    }
    if schedule.metadata.namespace:
        metadata["namespace"] = schedule.metadata.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentRun",
        "metadata": metadata,
        "spec": {
            "agentRef": {"name": schedule.spec.agent_ref.name},
            "input": input_text,
            "trigger": trigger,
        },
    }


def build_run_for_slot(schedule: AgentSchedule, slot: datetime) -> JsonObject:
    """The AgentRun for one cron slot: named by the slot, owned by the schedule, input rendered.

    Owned (controller reference) so that deleting the schedule deletes its runs and kopf can find the
    schedule from a run.
    """
    scheduled = _rfc3339(slot)
    variables: dict[str, Any] = {"scheduledTime": scheduled, "schedule": schedule.metadata.name}
    return _run(
        schedule,
        run_name_for_slot(schedule.metadata.name, slot),
        render_input(schedule.spec.input, variables),
        {"type": TriggerType.SCHEDULE.value, "scheduleRef": {"name": schedule.metadata.name}},
        "schedule",
        {SCHEDULED_TIME_ANNOTATION: scheduled},
    )


def build_run_for_signal(
    schedule: AgentSchedule, trigger_name: str, signal: Signal, received_at: datetime
) -> JsonObject:
    """The AgentRun one significant event starts: named by the event, carrying it in spec.trigger.signal.

    `scheduledTime` in the input template is the time the event arrived. An event with a `traceparent`
    extension (CloudEvents distributed tracing) puts it on the run, so the run sits in the sender's trace.
    """
    event: JsonObject = {"id": signal.id, "type": signal.type, "source": signal.source}
    if signal.time is not None:
        event["time"] = _rfc3339(signal.time)
    variables: dict[str, Any] = {
        "scheduledTime": _rfc3339(received_at),
        "schedule": schedule.metadata.name,
        "signal": signal.template_variables(),
    }
    annotations = {SIGNAL_TRIGGER_ANNOTATION: trigger_name, SCHEDULED_TIME_ANNOTATION: _rfc3339(received_at)}
    if signal.traceparent:  # the run joins the sender's trace (environment.traceparent reads it)
        annotations[TRACEPARENT_ANNOTATION] = signal.traceparent
    return _run(
        schedule,
        signal_run_name(schedule.metadata.name, signal.source, signal.id),
        render_input(schedule.spec.input, variables),
        {
            "type": TriggerType.SIGNAL.value,
            "scheduleRef": {"name": schedule.metadata.name},
            "signal": event,
        },
        "signal",
        annotations,
    )
