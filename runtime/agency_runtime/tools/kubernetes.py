"""The built-in `kubernetes` tool: get, list, create and patch objects as the run itself.

Calls carry the run's own token, so RBAC decides what is allowed: the run's Role and the ClusterRoles its
policy grants. A refusal (403) or any other API error is a tool result the model reads, never a crash.

Risk follows the verb: get and list only read; a merge patch is idempotent (sending it again changes
nothing more); create is destructive (a second create is a second object, or a conflict). Every change
records how to undo it, for rollback: a create is undone by deleting what it made, a patch by a merge
patch that puts back the values it overwrote (read just before patching).
"""

from __future__ import annotations

import json
from typing import Any

from agency_runtime.api.common import Risk
from agency_runtime.kube import KubeApiError, KubeClient, resource_path
from agency_runtime.tools.base import JsonDict, Tool, ToolContext, ToolError, ToolOutcome

MAX_CHARS = 16_000
VERBS = ("get", "list", "create", "patch")
UNDO_VERBS = ("delete",)
"""Not offered to the model; used by compensations (rollback), gated like any destructive call."""
VERB_RISK = {
    "get": Risk.READ_ONLY,
    "list": Risk.READ_ONLY,
    "patch": Risk.IDEMPOTENT,
    "create": Risk.DESTRUCTIVE,
    "delete": Risk.DESTRUCTIVE,
}


def _trim(obj: Any) -> Any:
    """Drop what only the API server reads (managedFields) from an object or list."""
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        if isinstance(obj.get("items"), list):
            obj = {**obj, "items": [_trim(i) for i in obj["items"]]}
    return obj


def _text(obj: Any) -> str:
    text = json.dumps(_trim(obj), indent=1, sort_keys=True)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + f"... [{len(text) - MAX_CHARS} more characters cut]"
    return text


def inverse_merge_patch(patch: JsonDict, before: JsonDict) -> JsonDict:
    """The merge patch that undoes `patch` on an object that was `before`: each field the patch set gets
    its old value back, fields it added are removed (null)."""
    undo: JsonDict = {}
    for key, value in patch.items():
        if key not in before:
            undo[key] = None
        elif isinstance(value, dict) and isinstance(before[key], dict):
            undo[key] = inverse_merge_patch(value, before[key])
        else:
            undo[key] = before[key]
    return undo


class KubernetesTool(Tool):
    """Kubernetes objects, read and changed with the run's own permissions."""

    reversible = True

    def __init__(
        self, name: str, description: str | None, client: KubeClient, namespace: str, *, risk: Risk | None
    ) -> None:
        self.name = name
        self.description = description or (
            "Read and change Kubernetes objects with this run's own permissions: get or list objects, "
            "create one, or merge-patch one. A refusal means the run's RBAC does not allow it."
        )
        self.client = client
        self.namespace = namespace
        self._risk = risk
        self._parameters: JsonDict = {
            "type": "object",
            "properties": {
                "verb": {"type": "string", "enum": list(VERBS)},
                "apiVersion": {"type": "string", "description": "e.g. v1, apps/v1, batch/v1"},
                "resource": {"type": "string", "description": "The plural resource name, e.g. configmaps"},
                "namespace": {
                    "type": "string",
                    "description": f"Defaults to the run's own ({namespace}); empty for cluster-scoped ones.",
                },
                "name": {"type": "string", "description": "The object's name (get and patch)."},
                "labelSelector": {"type": "string", "description": "For list, e.g. app=web"},
                "body": {
                    "type": "object",
                    "description": "create: the whole object; patch: a JSON merge patch.",
                },
            },
            "required": ["verb", "apiVersion", "resource"],
            "additionalProperties": False,
        }

    @property
    def parameters(self) -> JsonDict:
        return self._parameters

    def risk(self, arguments: JsonDict) -> Risk:
        return self._risk or VERB_RISK.get(str(arguments.get("verb")), Risk.DESTRUCTIVE)

    def _path(self, arguments: JsonDict, with_name: bool) -> str:
        namespace = arguments.get("namespace", self.namespace)
        name = arguments.get("name")
        if with_name and not name:
            raise ToolError(f"{arguments['verb']} needs the object's name")
        return resource_path(
            str(arguments["apiVersion"]),
            str(arguments["resource"]),
            str(namespace) or None,
            str(name) if with_name else None,
        )

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        verb = str(arguments["verb"])
        if verb not in VERBS + UNDO_VERBS:
            raise ToolError(f"verb {verb!r} is not one of {', '.join(VERBS)}")
        body = arguments.get("body")
        if verb in {"create", "patch"} and not isinstance(body, dict):
            raise ToolError(f"{verb} needs body: a JSON object")
        what = f"{verb} {arguments['resource']}" + (f" {arguments['name']}" if arguments.get("name") else "")
        try:
            if verb == "get":
                return ToolOutcome(_text(self.client.get(self._path(arguments, True))))
            if verb == "list":
                selector = arguments.get("labelSelector")
                params = {"labelSelector": str(selector)} if selector else None
                return ToolOutcome(_text(self.client.get(self._path(arguments, False), params=params)))
            if verb == "delete":
                self.client.delete(self._path(arguments, True))
                return ToolOutcome(f"deleted {arguments['resource']} {arguments['name']}")
            if verb == "create":
                assert isinstance(body, dict)  # noqa: S101 - checked above
                created = self.client.create(self._path(arguments, False), body)
                meta = created.get("metadata", {})
                return ToolOutcome(
                    f"created {arguments['resource']} {meta.get('name')}\n{_text(created)}",
                    data={"created": {"name": meta.get("name"), "namespace": meta.get("namespace", "")}},
                )
            assert isinstance(body, dict)  # noqa: S101 - checked above
            path = self._path(arguments, True)
            before = self.client.get(path)
            patched = self.client.patch(path, body)
            return ToolOutcome(
                f"patched {arguments['resource']} {arguments['name']}\n{_text(patched)}",
                data={"restore": inverse_merge_patch(body, before)},
            )
        except KubeApiError as err:
            return ToolOutcome.error(
                f"error: {what} was refused: HTTP {err.status} {err.reason}: {err.message}",
                status=err.status,
            )

    def can_undo(self, arguments: JsonDict) -> bool:
        return arguments.get("verb") in {"create", "patch"}

    def compensation(self, arguments: JsonDict, outcome: ToolOutcome) -> JsonDict | None:
        if outcome.is_error:
            return None
        verb = arguments.get("verb")
        base: JsonDict = {k: arguments[k] for k in ("apiVersion", "resource", "namespace") if k in arguments}
        if verb == "create":
            created = outcome.data.get("created") or {}
            if not created.get("name"):
                return None
            undo = {
                **base,
                "verb": "delete",
                "name": created["name"],
                "namespace": created.get("namespace") or "",
            }
            return {"tool": self.name, "arguments": undo}
        if verb == "patch" and "restore" in outcome.data:
            return {
                "tool": self.name,
                "arguments": {
                    **base,
                    "verb": "patch",
                    "name": arguments["name"],
                    "body": outcome.data["restore"],
                },
            }
        return None
