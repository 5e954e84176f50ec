"""The runtime's own small Kubernetes client: the run's token, the run's RBAC, plain dicts.

The runtime never imports the operator, and it talks to the API server only as the run itself (a token
bound to the run's ServiceAccount, read from `AGENCY_KUBE_TOKEN_FILE` on every request, since a projected
token is rotated in place). Everything it may do is what the run's Role allows: read its AgentRun, patch
its status, keep its journal, and whatever the policy's ClusterRoles grant the `kubernetes` tool.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from agency_runtime.api.meta import API_VERSION
from agency_runtime.contract import RunEnv

JsonDict = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
AGENTRUNS = "agentruns"


#: How often a request the API server throttles (429) is sent again, and the longest wait between.
THROTTLE_RETRIES = 5
MAX_RETRY_AFTER_SECONDS = 5.0


class Answered(Protocol):
    """What `retry_after` reads of an answer: an `httpx.Response`, or the operator's own `Answer`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...  # with a case-insensitive .get(name, default)


AnswerT = TypeVar("AnswerT", bound=Answered)


class Readable(Answered, Protocol):
    """An answer with its body: what `answer_json` reads."""

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def answer_json(response: Readable) -> JsonDict:
    """The answer's JSON object ({} when empty), or `KubeApiError` with the server's reason and message."""
    if response.status_code >= 400:
        try:
            status = response.json()
        except ValueError:
            status = {}
        if not isinstance(status, dict):
            status = {}
        raise KubeApiError(
            response.status_code,
            str(status.get("reason", "")),
            str(status.get("message", response.text[:500])),
        )
    if not response.content:
        return {}
    result: JsonDict = response.json()
    return result


def retry_after(response: Answered) -> float | None:
    """Seconds to wait before sending a throttled request again, or None when it was not throttled.

    The API server answers 429 with a Retry-After while the storage of a just-created resource type
    initialises ("storage is (re)initializing") and when its priority-and-fairness queues are full. The
    request did nothing, so any verb may be sent again (client-go does the same)."""
    if response.status_code != 429:
        return None
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def send_throttled(send: Callable[[], AnswerT]) -> AnswerT:
    """`send()`, sent again after the wait the server asks for while it answers 429, at most
    `THROTTLE_RETRIES` more times; the last answer is returned as it is."""
    response = send()
    for _ in range(THROTTLE_RETRIES):
        wait = retry_after(response)
        if wait is None:
            return response
        close = getattr(response, "close", None)
        if close is not None:  # an httpx response holds its connection until closed
            close()
        time.sleep(wait)
        response = send()
    return response


class KubeApiError(Exception):
    """The API server refused or failed a request; `status` is the HTTP code, `reason` its Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"


def resource_path(
    api_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The REST path of a collection or object: `/api/v1/...` for the core group, `/apis/...` otherwise."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name, safe='')}"
    return base


class _TokenFileAuth(httpx.Auth):
    """The bearer token read from its file on each request (kubelet rotates projected tokens in place)."""

    def __init__(self, token_file: Path) -> None:
        self.token_file = token_file

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self.token_file.read_text().strip()
        yield request


@dataclass(frozen=True)
class RunObject:
    """Which AgentRun this process works for (its ownerReference target)."""

    namespace: str
    name: str
    uid: str

    def path(self, subresource: str | None = None) -> str:
        path = resource_path(API_VERSION, AGENTRUNS, self.namespace, self.name)
        return f"{path}/{subresource}" if subresource else path

    def owner_reference(self) -> JsonDict:
        """Owned by the run but not blocking its deletion (blocking needs update on agentruns/finalizers)."""
        return {
            "apiVersion": API_VERSION,
            "kind": "AgentRun",
            "name": self.name,
            "uid": self.uid,
            "blockOwnerDeletion": False,
        }


class KubeClient:
    """GET/POST/PUT/PATCH/DELETE returning the API server's JSON; errors as `KubeApiError`."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    @classmethod
    def connect(
        cls, server: str, *, token_file: Path, ca_file: Path | None = None, timeout: float = 15.0
    ) -> KubeClient:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        http = httpx.Client(base_url=server, verify=verify, auth=_TokenFileAuth(token_file), timeout=timeout)
        return cls(http)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JsonDict:
        headers = {"Content-Type": content_type} if body is not None else {}
        try:
            response = send_throttled(
                lambda: self.http.request(method, path, json=body, params=params, headers=headers)
            )
        except httpx.HTTPError as err:
            raise KubeApiError(0, "Unreachable", f"{method} {path}: {type(err).__name__}: {err}") from None
        return answer_json(response)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> JsonDict:
        return self.request("GET", path, params=params)

    def create(self, path: str, body: JsonDict) -> JsonDict:
        return self.request("POST", path, body)

    def replace(self, path: str, body: JsonDict) -> JsonDict:
        """PUT: with `metadata.resourceVersion` set, a compare-and-swap (409 Conflict if it changed)."""
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> JsonDict:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str) -> JsonDict:
        return self.request("DELETE", path)


def client_for(env: RunEnv) -> KubeClient | None:
    """A client logged in as the run, or None when the process has no token (a local `agency run`)."""
    if env.token_file is None or not env.api_server.startswith("https://"):
        return None
    return KubeClient.connect(env.api_server, token_file=env.token_file, ca_file=env.ca_file)


def run_object(env: RunEnv) -> RunObject:
    return RunObject(env.namespace, env.run_name, env.run_uid)
