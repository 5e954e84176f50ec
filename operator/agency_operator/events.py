"""Kubernetes Events about agency objects, posted by the operator so `kubectl describe` tells the story."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agency_operator.kube import JsonDict, Kube, KubeError, path_for
from agency_operator.status import timestamp

COMPONENT = "agency-operator"
MAX_MESSAGE = 1024


def build_event(obj: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime) -> JsonDict:
    """A core/v1 Event about `obj` (Normal or Warning), with a unique name."""
    meta = obj["metadata"]
    stamp = timestamp(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


@dataclass(frozen=True)
class Story:
    """One Event to post: its type (Normal or Warning), reason and message."""

    type: str
    reason: str
    message: str


def fold(transitions: Sequence[tuple[str, str, str, str]], type_of: Callable[[str, str], str]) -> list[Story]:
    """The Events for the condition transitions of one status write.

    Every Warning is an Event of its own (each names what went wrong). The Normal transitions of one
    write are one Event, with the last one's reason and every message in order: a run that starts says
    Admitted, Found, Bound and Starting in one write, and one Event (as the job controller's one
    SuccessfulCreate) tells that story in one request instead of four.
    """
    stories: list[Story] = []
    normal: list[tuple[str, str]] = []
    for _type, status, reason, message in transitions:
        kind = type_of(status, reason)
        if kind == "Normal":
            normal.append((reason, message))
        else:
            stories.append(Story(kind, reason, message))
    if len(normal) == 1:
        stories.append(Story("Normal", normal[0][0], normal[0][1]))
    elif normal:
        text = " ".join(f"{reason}: {message}" if message else f"{reason}." for reason, message in normal)
        stories.append(Story("Normal", normal[-1][0], text))
    return stories


def condition_type(status: str, _reason: str) -> str:
    """An Agent's or schedule's condition transition: a Warning when it turns False, Normal otherwise."""
    return "Warning" if status == "False" else "Normal"


def post_transitions(
    kube: Kube, obj: Mapping[str, Any], transitions: Sequence[tuple[str, str, str, str]]
) -> None:
    """The Events of one status write of an Agent or schedule (`fold`: one Normal story, each Warning
    alone); `post` each."""
    for story in fold(transitions, condition_type):
        post(kube, obj, story.type, story.reason, story.message)


def post(kube: Kube, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event; failing to post one never fails a reconcile (Events are best-effort by design)."""
    body = build_event(obj, type_, reason, message, datetime.now(UTC))
    try:
        kube.create(path_for("v1", "events", obj["metadata"]["namespace"]), body)
    except KubeError:
        return
