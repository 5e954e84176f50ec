"""`kubectl agency approve|reject RUN`: record a decision in the run's spec.approvals.

The decision is recorded under the caller's own user name, asked from the API server (a
SelfSubjectReview), because the approvals admission policy refuses any other `by`. It is appended with a
JSON patch, so decisions recorded meanwhile by others are kept; when the list does not exist yet the
patch creates it, pinned to the resourceVersion read so that a concurrent first decision is not lost
(the loser of that race retries once on the new version).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from agency_runtime.kubectl.client import Api, run_path, status_message
from agency_runtime.kubectl.errors import ApiError, Forbidden, PluginError
from agency_runtime.kubectl.progress import undecided

JsonDict = dict[str, Any]
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
#: What the API server answers when the patch's `test` of the resourceVersion read fails.
RETRIED_STATUS = 422


def choose_proposal(run: Mapping[str, Any], requested: str | None) -> str:
    """The proposal to decide: the one asked for, or the only one waiting."""
    name = run["metadata"]["name"]
    for recorded in (run.get("spec") or {}).get("approvals") or []:
        if recorded.get("proposalId") == requested:
            raise PluginError(
                f"proposal {requested} of AgentRun {name} was already decided: {recorded.get('decision')} "
                f"by {recorded.get('by')} at {recorded.get('at')}"
            )
    if requested:
        return requested
    pending = [str(p.get("proposalId")) for p in undecided(run)]
    if len(pending) == 1:
        return pending[0]
    if not pending:
        raise PluginError(
            f"AgentRun {name} has no proposal waiting for a decision (status.pendingApprovals is empty); "
            "pass --proposal ID to decide one anyway"
        )
    raise PluginError(
        f"AgentRun {name} has {len(pending)} proposals waiting ({', '.join(pending)}): pass --proposal ID"
    )


def decision_entry(proposal: str, decision: str, by: str, at: datetime, reason: str | None) -> JsonDict:
    entry: JsonDict = {
        "proposalId": proposal,
        "decision": decision,
        "by": by,
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if reason:
        entry["reason"] = reason
    return entry


def patch_ops(run: Mapping[str, Any], entry: JsonDict) -> list[JsonDict]:
    """Append to spec.approvals, or create it (only on the version read) when the run has none yet."""
    if "approvals" in (run.get("spec") or {}):
        return [{"op": "add", "path": "/spec/approvals/-", "value": entry}]
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": run["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/spec/approvals", "value": [entry]},
    ]


def whoami(api: Api) -> str:
    """The caller's user name, as the API server authenticates it."""
    for version in ("v1", "v1beta1"):
        response = api.send(
            "POST",
            f"/apis/authentication.k8s.io/{version}/selfsubjectreviews",
            json={"apiVersion": f"authentication.k8s.io/{version}", "kind": "SelfSubjectReview"},
        )
        if response.is_success:
            return str(response.json()["status"]["userInfo"]["username"])
        if response.status_code != 404:
            raise api.error(
                response, "", what="your user name (SelfSubjectReview)", namespace=None, action="ask"
            )
    raise ApiError(
        "the API server does not answer SelfSubjectReview (Kubernetes 1.28 or later needed) "
        "to tell who you are"
    )


def decide(
    api: Api, namespace: str, name: str, decision: str, proposal: str | None, reason: str | None
) -> JsonDict:
    """Record the decision; returns the entry recorded."""
    user = whoami(api)
    what = f"AgentRun {name}"
    for attempt in range(2):
        run = api.get(run_path(namespace, name), what=what, namespace=namespace)
        entry = decision_entry(choose_proposal(run, proposal), decision, user, datetime.now(UTC), reason)
        response = api.send(
            "PATCH", run_path(namespace, name), json=patch_ops(run, entry), headers=JSON_PATCH
        )
        if response.is_success:
            return entry
        if response.status_code == RETRIED_STATUS and attempt == 0 and "approvals" not in run["spec"]:
            continue  # perhaps someone recorded the first decision meanwhile: read again, append to theirs
        raise _refusal(api, response, namespace, name, user)
    raise ApiError(f"the decision on {what} in namespace {namespace} could not be recorded: it kept changing")


def _refusal(api: Api, response: httpx.Response, namespace: str, name: str, user: str) -> PluginError:
    message = status_message(response)
    if response.status_code == 403 or "approvers need the RBAC verb" in message:
        return Forbidden(
            f"you ({user}) are not allowed to approve runs in namespace {namespace}: ask for the approve "
            f"verb on agentruns (agency.dev), as the AgentPolicy's spec.approvals.approvers get it. "
            f"The API server said: {message}"
        )
    return api.error(
        response, run_path(namespace, name), what=f"AgentRun {name}", namespace=namespace, action="patch"
    )
