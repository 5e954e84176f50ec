"""The built-in `publish_signal` tool: tell other agents something happened, as a CloudEvent.

It POSTs one CloudEvent 1.0 in structured mode (`application/cloudevents+json`) to the operator's signal
endpoint (`AGENCY_SIGNAL_URL`, `https://.../namespaces/{namespace}/signals`), where AgentSchedules with a
matching signal trigger start runs. The caller authenticates with a Kubernetes token issued for the
endpoint's audience (`agency.dev/signals`), read from `AGENCY_SIGNAL_TOKEN_FILE` on every call (a projected
token is rotated in place); RBAC must allow `create` on `signals.agency.dev` in the namespace.

The event's `source` is the run (`agency.dev/<namespace>/agentruns/<run>`) and its `id` is derived from the
call's idempotency key, so a retried publish (also by a new process after a crash) is the same event and
the endpoint deduplicates it: the call is idempotent. The event carries the publishing call's span as
the `traceparent` extension attribute (CloudEvents distributed tracing), for the run it starts to join.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from agency_runtime.api.common import Risk
from agency_runtime.tools.base import JsonDict, Tool, ToolContext, ToolError, ToolOutcome
from agency_runtime.tracing import current_traceparent

SIGNAL_URL = "AGENCY_SIGNAL_URL"
SIGNAL_TOKEN_FILE = "AGENCY_SIGNAL_TOKEN_FILE"  # noqa: S105 - the name of a variable, not a token
SIGNAL_CA_FILE = "AGENCY_SIGNAL_CA_FILE"
CONTENT_TYPE = "application/cloudevents+json"
TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$"
TIMEOUT_SECONDS = 15.0
MAX_ANSWER_CHARS = 1_000


@dataclass(frozen=True)
class SignalEndpoint:
    """Where and as whom to publish: the endpoint URL (`{namespace}` is filled in), the token file and an
    optional CA bundle for an https endpoint with a private CA."""

    url: str
    token_file: Path | None
    ca_file: Path | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SignalEndpoint | None:
        url = environ.get(SIGNAL_URL, "")
        if not url:
            return None
        token = environ.get(SIGNAL_TOKEN_FILE)
        ca = environ.get(SIGNAL_CA_FILE)
        return cls(url, Path(token) if token else None, Path(ca) if ca else None)

    def url_for(self, namespace: str) -> str:
        return self.url.replace("{namespace}", namespace)


def event_id(idempotency_key: str) -> str:
    """The same id for every retry of one call."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def cloud_event(
    namespace: str,
    run: str,
    idempotency_key: str,
    kind: str,
    data: object,
    subject: str | None,
    now: datetime,
    traceparent: str | None = None,
) -> JsonDict:
    """The structured-mode CloudEvent of one publish call; `traceparent` (the CloudEvents distributed
    tracing extension) is the publishing call's span, so a run the event starts can join the trace."""
    event: JsonDict = {
        "specversion": "1.0",
        "id": event_id(idempotency_key),
        "source": f"agency.dev/{namespace}/agentruns/{run}",
        "type": kind,
        "time": now.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject:
        event["subject"] = subject
    if traceparent:
        event["traceparent"] = traceparent
    return event


class PublishSignalTool(Tool):
    """Publish a CloudEvent to the operator's signal endpoint, as this run."""

    def __init__(
        self,
        name: str,
        description: str | None,
        endpoint: SignalEndpoint | None,
        namespace: str,
        run: str,
        *,
        risk: Risk | None = None,
    ) -> None:
        self.name = name
        self.description = description or (
            "Publish an event (a CloudEvent) that other agents may react to: give its type, e.g. "
            "'com.example.temperature.high', and its data as a JSON object."
        )
        self.endpoint = endpoint
        self.namespace = namespace
        self.run = run
        self._risk = risk or Risk.IDEMPOTENT

    @property
    def parameters(self) -> JsonDict:
        return {
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "description": "The event type, reverse-DNS style.",
                    "pattern": TYPE_PATTERN,
                },
                "data": {"type": "object", "description": "The event's data."},
                "subject": {"type": "string", "description": "Optional: what the event is about."},
            },
            "required": ["type", "data"],
            "additionalProperties": False,
        }

    def risk(self, arguments: JsonDict) -> Risk:
        return self._risk

    def _token(self) -> str:
        if self.endpoint is None or self.endpoint.token_file is None:
            raise ToolError(
                f"this run has no token for the signal endpoint ({SIGNAL_TOKEN_FILE} is not set); signals "
                "cannot be published"
            )
        try:
            token = self.endpoint.token_file.read_text().strip()
        except OSError as err:
            raise ToolError(f"the signal token cannot be read: {err.strerror or err}") from None
        if not token:
            raise ToolError("the signal token file is empty")
        return token

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        if self.endpoint is None:
            raise ToolError(f"no signal endpoint is configured for this run ({SIGNAL_URL} is not set)")
        kind = str(arguments.get("type") or "")
        if not kind:
            raise ToolError("the event needs a type")
        data = arguments.get("data")
        if not isinstance(data, dict):
            raise ToolError("data must be a JSON object")
        subject = arguments.get("subject")
        event = cloud_event(
            self.namespace,
            self.run,
            context.idempotency_key,
            kind,
            data,
            str(subject) if subject else None,
            datetime.now(UTC),
            current_traceparent(),
        )
        token = self._token()
        url = self.endpoint.url_for(self.namespace)
        verify: ssl.SSLContext | bool = True
        if self.endpoint.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.endpoint.ca_file))
        try:
            with httpx.Client(timeout=TIMEOUT_SECONDS, verify=verify, follow_redirects=False) as client:
                response = client.post(
                    url,
                    content=json.dumps(event).encode(),
                    headers={"Content-Type": CONTENT_TYPE, "Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError as err:
            return ToolOutcome.error(
                f"error: the signal endpoint could not be reached: {type(err).__name__}: {err}"
            )
        body = response.text[:MAX_ANSWER_CHARS]
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message") or body)
            except ValueError:
                message = body
            return ToolOutcome.error(
                f"error: the signal endpoint refused the event: HTTP {response.status_code}: {message}",
                status=response.status_code,
                eventId=event["id"],
            )
        try:
            runs = list(response.json().get("runs") or [])
        except (ValueError, AttributeError):
            runs = []
        started = f"; it started run(s): {', '.join(map(str, runs))}" if runs else "; no run was started"
        return ToolOutcome(
            f"published event {event['id']} of type {kind}{started}",
            data={"eventId": event["id"], "runs": runs},
        )
