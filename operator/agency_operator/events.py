"""Kubernetes Events about agency objects, posted by the operator so `kubectl describe` tells the story."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
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


def post(kube: Kube, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event; failing to post one never fails a reconcile (Events are best-effort by design)."""
    body = build_event(obj, type_, reason, message, datetime.now(UTC))
    try:
        kube.create(path_for("v1", "events", obj["metadata"]["namespace"]), body)
    except KubeError:
        return
