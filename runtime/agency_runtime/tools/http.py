"""HTTP tools: `http_request` (the built-in `http`: any allow-listed URL) and endpoint tools (`http:`).

Hosts are allow-listed: by the tool's `allowedHosts` setting (comma-separated, `*.example.com` matches
subdomains) and, when a policy governs the run, by its egress rules (host and port). Nothing is reachable
when neither names the host. Redirects are not followed, since a redirect could leave the allow-list.
Calls other than GET carry an `Idempotency-Key` header that stays the same when the call is retried.

`http_request` takes an optional `undo` request (method, URL, body): the compensation recorded for
rollback. It must pass the same allow-list, checked before the call is made, so an undo that could never
run does not let a call through a policy that requires rollback.
"""

from __future__ import annotations

import fnmatch
import json
import time
from urllib.parse import urlsplit

import httpx

from agency_runtime.api.agent import HttpMethod, HttpTool
from agency_runtime.api.common import Risk
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.tools.base import JsonDict, Tool, ToolContext, ToolError, ToolOutcome

MAX_BODY_CHARS = 16_000
IDEMPOTENCY_HEADER = "Idempotency-Key"


def method_risk(method: str) -> Risk:
    """GET (and HEAD) read, PUT replaces (repeating it changes nothing more), everything else may harm."""
    upper = method.upper()
    if upper in {"GET", "HEAD", "OPTIONS"}:
        return Risk.READ_ONLY
    if upper == "PUT":
        return Risk.IDEMPOTENT
    return Risk.DESTRUCTIVE


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.strip().lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return fnmatch.fnmatchcase(host, pattern)


def check_destination(url: str, allowed_hosts: list[str] | None, policy: AgentPolicySpec | None) -> None:
    """ToolError unless the URL's host (and port) is allowed by the tool's list and the policy's egress."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ToolError(f"{url!r} is not an http:// or https:// URL")
    host = parts.hostname.lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if allowed_hosts is None and policy is None:
        raise ToolError(f"host {host!r} is not allowed: no allowedHosts setting and no policy name any host")
    if allowed_hosts is not None and not any(_host_matches(host, p) for p in allowed_hosts):
        raise ToolError(f"host {host!r} is not in this tool's allowedHosts ({', '.join(allowed_hosts)})")
    if policy is not None:
        for egress in policy.network.egress:
            if any(_host_matches(host, p) for p in egress.hosts) and any(
                p.port == port and p.protocol == "TCP" for p in egress.ports
            ):
                return
        raise ToolError(f"the policy's network egress rules do not allow {host}:{port}")


def _request(
    method: str,
    url: str,
    *,
    body: object | None,
    params: dict[str, str] | None,
    headers: dict[str, str],
    timeout: float,
    context: ToolContext,
) -> ToolOutcome:
    if context.deadline is not None:
        left = context.deadline - time.time()
        if left <= 0:
            raise ToolError("the run's wall-time limit was reached before the call")
        timeout = min(timeout, left)
    send = dict(headers)
    if method.upper() != "GET":
        send[IDEMPOTENCY_HEADER] = context.idempotency_key
    content: bytes | None = None
    if body is not None:
        content = (body if isinstance(body, str) else json.dumps(body)).encode()
        send.setdefault("Content-Type", "application/json")
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.request(method.upper(), url, params=params, content=content, headers=send)
    except httpx.HTTPError as err:
        raise ToolError(f"{method.upper()} {url} failed: {type(err).__name__}: {err}") from None
    text = response.text
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + f"... [{len(response.text) - MAX_BODY_CHARS} more characters cut]"
    summary = f"HTTP {response.status_code}\n{text}"
    return ToolOutcome(summary, is_error=response.status_code >= 400, data={"status": response.status_code})


class HttpRequestTool(Tool):
    """The built-in `http` tool: the model picks method, URL and body; the host must be allow-listed."""

    def __init__(
        self,
        name: str,
        description: str | None,
        *,
        allowed_hosts: list[str] | None,
        policy: AgentPolicySpec | None,
        risk: Risk | None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.name = name
        self.description = description or (
            "Make an HTTP request to an allowed host. GET reads; POST, PUT, PATCH and DELETE change things."
        )
        self._parameters: JsonDict = {
            "type": "object",
            "properties": {
                "method": {"type": "string", "enum": [m.value for m in HttpMethod], "default": "GET"},
                "url": {"type": "string", "description": "The full http:// or https:// URL."},
                "body": {"description": "A JSON body (for methods other than GET)."},
                "undo": {
                    "type": "object",
                    "description": (
                        "How to undo this call if a later check fails, e.g. the DELETE of what a POST "
                        "creates: {method, url, body}. Policies may require it for changing calls."
                    ),
                    "properties": {
                        "method": {"type": "string", "enum": [m.value for m in HttpMethod]},
                        "url": {"type": "string"},
                        "body": {},
                    },
                    "required": ["method", "url"],
                },
            },
            "required": ["url"],
            "additionalProperties": False,
        }
        self._allowed = allowed_hosts
        self._policy = policy
        self._risk = risk
        self._timeout = timeout_seconds

    @property
    def parameters(self) -> JsonDict:
        return self._parameters

    def risk(self, arguments: JsonDict) -> Risk:
        return self._risk or method_risk(str(arguments.get("method") or "GET"))

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        method = str(arguments.get("method") or "GET").upper()
        if method not in {m.value for m in HttpMethod}:
            raise ToolError(f"method {method!r} is not one of {', '.join(m.value for m in HttpMethod)}")
        url = str(arguments["url"])
        check_destination(url, self._allowed, self._policy)
        undo = arguments.get("undo")
        if undo is not None:
            if not self.can_undo(arguments):
                raise ToolError("undo must be an object with method and url")
            check_destination(str(undo["url"]), self._allowed, self._policy)
        body = arguments.get("body") if method != "GET" else None
        return _request(
            method, url, body=body, params=None, headers={}, timeout=self._timeout, context=context
        )

    def can_undo(self, arguments: JsonDict) -> bool:
        undo = arguments.get("undo")
        return (
            isinstance(undo, dict)
            and isinstance(undo.get("url"), str)
            and str(undo.get("method", "")).upper() in {m.value for m in HttpMethod}
        )

    def compensation(self, arguments: JsonDict, outcome: ToolOutcome) -> JsonDict | None:
        """The `undo` request of a call that succeeded (a failed call changed nothing to undo)."""
        if outcome.is_error or not self.can_undo(arguments):
            return None
        undo = arguments["undo"]
        request: JsonDict = {"method": str(undo["method"]).upper(), "url": undo["url"]}
        if "body" in undo:
            request["body"] = undo["body"]
        return {"tool": self.name, "arguments": request}


class HttpEndpointTool(Tool):
    """A tool bound to one endpoint (`tools[].http`): GET sends the arguments as query, others as JSON."""

    def __init__(
        self,
        name: str,
        description: str,
        spec: HttpTool,
        *,
        policy: AgentPolicySpec | None,
        risk: Risk | None,
    ) -> None:
        self.name = name
        self.description = description
        self._parameters: JsonDict = spec.input_schema or {"type": "object", "properties": {}}
        self._spec = spec
        self._policy = policy
        self._risk = risk

    @property
    def parameters(self) -> JsonDict:
        return self._parameters

    def risk(self, arguments: JsonDict) -> Risk:
        return self._risk or method_risk(self._spec.method.value)

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        check_destination(self._spec.url, None if self._policy else ["*"], self._policy)
        headers: dict[str, str] = {}
        for header in self._spec.headers:
            if header.value is None:
                raise ToolError(
                    f"header {header.name} comes from a Secret, which this runtime cannot read yet"
                )
            headers[header.name] = header.value
        method = self._spec.method.value
        if method == "GET":
            params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
            return _request(
                method,
                self._spec.url,
                body=None,
                params=params,
                headers=headers,
                timeout=self._spec.timeout_seconds,
                context=context,
            )
        return _request(
            method,
            self._spec.url,
            body=arguments,
            params=None,
            headers=headers,
            timeout=self._spec.timeout_seconds,
            context=context,
        )
