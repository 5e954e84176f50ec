"""Pure judgements of what the API server and the operator did with one input.

- `named_field`: does a refusal name the field the mutation touched? The API server's Status lists the
  fields at fault in `details.causes[].field`; refusals that are not field validation (strict decoding of
  unknown fields, admission policies) name it in the message instead. A named field counts when it is
  the touched field, inside it (the touched object's own fields), or an enclosing object below the
  top level (a cross-field rule on `spec.tools[0]` about `spec.tools[0].description`), or a field beside
  it in the same object (the field a cross-field rule blames); plain `spec` counts only when the mutation
  touched `spec` itself.
- `reconciled`: has the operator written the object's status for its current generation?
- `log_problems`: lines of the operator's JSON log that show an unhandled error (kopf's own retries of
  API calls the server shed, and calls the API server did not answer in time, are not).
"""

from __future__ import annotations

import json
import re
from typing import Any

JsonDict = dict[str, Any]

_MENTIONED = re.compile(r"\b(?:spec|metadata)(?:\.[A-Za-z0-9_$-]+|\[[^\]\s]*\])*")
_INDEX = re.compile(r"\[(\d+)\]")
_KEY = re.compile(r"\[([^\]\d][^\]]*)\]")
_RETRIED = re.compile(r"^Request attempt #\d+/\d+ failed; will retry")
#: The API server not answering in time (a loaded machine): retried at the next resync, not bad input.
_UNANSWERED = re.compile(r"^httpx\.(ReadTimeout|WriteTimeout|ConnectTimeout|PoolTimeout)\b", re.M)


def normalize(path: str) -> str:
    """One spelling for a field path: no leading dot, map keys as `.key`, list indexes as `[i]`."""
    path = path.strip().lstrip(".")
    return _KEY.sub(lambda m: "." + m.group(1).strip("'\""), path)


def _segments(path: str) -> list[str]:
    return [s for s in re.split(r"[.\[]", _INDEX.sub(r"[\1", path)) if s]


def related(found: str, touched: str) -> bool:
    """`found` names the touched field, something inside it, an object enclosing it below the top level,
    or another field of the same object (a cross-field rule blames the field to fix, e.g. `namespace`
    when `kind` changed)."""
    found, touched = normalize(found), normalize(touched)
    if not found:
        return False
    if found == touched or _inside(found, touched):
        return True
    if _inside(touched, found):
        return len(_segments(found)) >= 2
    parent = _parent(found)
    return parent == _parent(touched) and len(_segments(parent)) >= 2 and not found.endswith("]")


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _inside(inner: str, outer: str) -> bool:
    return inner.startswith(outer + ".") or inner.startswith(outer + "[")


def named_field(status: JsonDict, touched: str) -> str | None:
    """Where a refusal names the touched field (a cause's field, or a path in a message), or None."""
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes:
        field = str(cause.get("field") or "")
        if related(field, touched):
            return f"causes[].field {field}"
    messages = [str(status.get("message") or "")] + [str(c.get("message") or "") for c in causes]
    for message in messages:
        message = message.replace("ObjectMeta.", "metadata.")  # decoding errors name the Go struct field
        for mentioned in _MENTIONED.findall(message):
            if related(mentioned, touched):
                return f"message names {mentioned}"
    return None


def condition(status: JsonDict, type_: str) -> JsonDict | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            found: JsonDict = cond
            return found
    return None


def reconciled(body: JsonDict) -> bool:
    """The operator wrote a status for the object's current generation, with a Ready condition (for runs
    also a phase)."""
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    ready = condition(status, "Ready")
    if status.get("observedGeneration") != generation or ready is None:
        return False
    if ready.get("observedGeneration") not in (None, generation):
        return False
    return body["kind"] != "AgentRun" or bool(status.get("phase"))


def stuck_run(body: JsonDict) -> str | None:
    """Why a reconciled run the operator admitted did not start (its identity or Pod could not be made)."""
    status = body.get("status") or {}
    admitted = condition(status, "Admitted") or {}
    credentials = condition(status, "CredentialsReady") or {}
    identity = condition(status, "IdentityReady") or {}
    if admitted.get("status") != "True" or credentials.get("status") != "True":
        return None
    if status.get("startTime") or identity.get("status") == "False":
        return None
    return f"admitted but not started (Ready: {condition(status, 'Ready')})"


def log_problems(lines: list[str]) -> list[str]:
    """Unhandled errors in the operator's JSON log lines: tracebacks, kopf handler failures, errors."""
    problems = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            if line.startswith(("Traceback", "Exception", "Fatal Python error")):
                problems.append(line.strip()[:300])
            continue
        if not isinstance(record, dict):
            continue
        severity = str(record.get("severity") or record.get("levelname") or "").lower()
        if _RETRIED.search(str(record.get("message", ""))):
            continue  # kopf retries API calls the server sheds (429 while CRD storage initializes)
        if _UNANSWERED.search(str(record.get("exc_info", ""))):
            continue
        if severity in ("error", "critical") or record.get("exc_info"):
            where = record.get("object") or {}
            name = where.get("name") if isinstance(where, dict) else None
            message = str(record.get("message", ""))[:300]
            problems.append(f"{name or '-'}: {message}")
    return problems
