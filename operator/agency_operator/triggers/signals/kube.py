"""The API-server side of the signal endpoint: TokenReview, SubjectAccessReview, AgentSchedules, AgentRuns.

Plain HTTP with an `httpx.AsyncClient` (async, so it runs in the operator's loop next to kopf), built from
the same kubeconfig or in-cluster credentials the `kubernetes` package loads. The operator's service
account needs, besides its usual rights on AgentSchedules and AgentRuns:

    - apiGroups: ["authentication.k8s.io"]
      resources: ["tokenreviews"]
      verbs: ["create"]
    - apiGroups: ["authorization.k8s.io"]
      resources: ["subjectaccessreviews"]
      verbs: ["create"]

An answer of 5xx, a 429 that persists, a timeout or a connection failure raises `KubernetesUnavailable`
(the endpoint answers 503); any other unexpected status is a bug and raises `httpx.HTTPStatusError`
(the endpoint answers 500).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import web
from kubernetes import config as kube_config
from kubernetes.client import Configuration
from pydantic import ValidationError

from agency_operator.triggers.history import SCHEDULE_LABEL, active_run_names
from agency_operator.triggers.signals.app import DEFAULT_MAX_BYTES, build_app
from agency_operator.triggers.signals.dispatch import SignalDispatcher
from agency_operator.triggers.signals.matching import ThresholdWindows
from agency_operator.triggers.signals.metrics import SignalMetrics
from agency_operator.triggers.signals.ports import Caller, KubernetesUnavailable
from agency_runtime.api.meta import API_VERSION, JsonObject
from agency_runtime.api.schedule import AgentSchedule

log = logging.getLogger(__name__)

#: The audience signal tokens must be issued for.
DEFAULT_AUDIENCE = "agency.dev/signals"

_THROTTLE_RETRIES = 3


class _ConfigAuth(httpx.Auth):
    """Adds the configuration's bearer token per request, so in-cluster token rotation is followed."""

    def __init__(self, configuration: Configuration) -> None:
        self._configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = self._configuration.get_api_key_with_prefix("authorization")
        if value:
            request.headers["Authorization"] = value
        yield request


def async_client(*, kubeconfig: str | None = None, timeout: float = 10.0) -> httpx.AsyncClient:
    """An API-server client: from `kubeconfig` when given, else in-cluster credentials, else the default
    kubeconfig (`KUBECONFIG` or ~/.kube/config)."""
    configuration = Configuration()
    if kubeconfig is not None:
        kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            kube_config.load_incluster_config(client_configuration=configuration)
        except kube_config.ConfigException:
            kube_config.load_kube_config(client_configuration=configuration)
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file and configuration.key_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return httpx.AsyncClient(
        base_url=str(configuration.host), verify=context, auth=_ConfigAuth(configuration), timeout=timeout
    )


async def _call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; 429 (the API server shedding load, also while it starts) is retried a few times after
    the Retry-After it asks for (at most a second each), then reported as unavailable like a 5xx."""
    for attempt in range(_THROTTLE_RETRIES + 1):
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError as error:
            raise KubernetesUnavailable(f"{method} {url}: {type(error).__name__}: {error}") from error
        if response.status_code != httpx.codes.TOO_MANY_REQUESTS or attempt == _THROTTLE_RETRIES:
            break
        await asyncio.sleep(_retry_after(response))
    if response.status_code >= 500 or response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        raise KubernetesUnavailable(f"{method} {url}: HTTP {response.status_code}")
    return response


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(1.0, max(0.05, float(response.headers.get("Retry-After", "0.2"))))
    except ValueError:
        return 0.2


class KubeTokenReviewer:
    """TokenReview with the endpoint's audience: the token must be valid and issued for that audience."""

    def __init__(self, client: httpx.AsyncClient, audience: str = DEFAULT_AUDIENCE) -> None:
        self._client = client
        self._audience = audience

    async def authenticate(self, token: str) -> Caller | None:
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self._audience]},
        }
        response = await _call(
            self._client, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", json=review
        )
        response.raise_for_status()
        status = response.json().get("status") or {}
        if not status.get("authenticated") or self._audience not in (status.get("audiences") or []):
            return None
        user = status.get("user") or {}
        return Caller(
            username=str(user.get("username", "")),
            uid=user.get("uid"),
            groups=tuple(user.get("groups") or ()),
            extra={k: tuple(v) for k, v in (user.get("extra") or {}).items()},
        )


class KubeAccessReviewer:
    """SubjectAccessReview: may the caller `create` `signals` in API group agency.dev in the namespace?"""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def may_send_signals(self, caller: Caller, namespace: str) -> bool:
        spec: JsonObject = {
            "user": caller.username,
            "groups": list(caller.groups),
            "extra": {k: list(v) for k, v in caller.extra.items()},
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "create",
                "group": "agency.dev",
                "resource": "signals",
            },
        }
        if caller.uid:
            spec["uid"] = caller.uid
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        response = await _call(
            self._client, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review
        )
        response.raise_for_status()
        return bool((response.json().get("status") or {}).get("allowed"))


def _runs_url(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{API_VERSION}/namespaces/{namespace}/agentruns"
    return f"{base}/{name}" if name else base


class KubeScheduleIndex:
    """Lists the namespace's AgentSchedules on each event: always current, one request per event."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def schedules(self, namespace: str) -> Sequence[AgentSchedule]:
        response = await _call(
            self._client, "GET", f"/apis/{API_VERSION}/namespaces/{namespace}/agentschedules"
        )
        response.raise_for_status()
        found: list[AgentSchedule] = []
        for item in response.json().get("items", []):
            try:
                schedule = AgentSchedule.from_k8s(item)
            except ValidationError as error:
                name = (item.get("metadata") or {}).get("name")
                log.warning("AgentSchedule %s/%s does not parse, skipped: %s", namespace, name, error)
                continue
            if schedule.spec.signals:
                found.append(schedule)
        return found

    async def record_signal(self, namespace: str, schedule: str, at: datetime) -> None:
        stamp = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        response = await _call(
            self._client,
            "PATCH",
            f"/apis/{API_VERSION}/namespaces/{namespace}/agentschedules/{schedule}/status",
            json={"status": {"lastSignalTime": stamp}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if response.status_code != httpx.codes.NOT_FOUND:  # deleted meanwhile: nothing to record
            response.raise_for_status()


class KubeRunCreator:
    """Creates, finds and deletes AgentRuns."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def create(self, manifest: JsonObject) -> bool:
        namespace = manifest["metadata"]["namespace"]
        response = await _call(self._client, "POST", _runs_url(namespace), json=manifest)
        if response.status_code == httpx.codes.CONFLICT:
            return False
        response.raise_for_status()
        return True

    async def exists(self, namespace: str, name: str) -> bool:
        response = await _call(self._client, "GET", _runs_url(namespace, name))
        if response.status_code == httpx.codes.NOT_FOUND:
            return False
        response.raise_for_status()
        return True

    async def active_runs(self, namespace: str, schedule: str) -> list[str]:
        response = await _call(
            self._client,
            "GET",
            _runs_url(namespace),
            params={"labelSelector": f"{SCHEDULE_LABEL}={schedule}"},
        )
        response.raise_for_status()
        return active_run_names(response.json().get("items", []))

    async def cancel(self, namespace: str, name: str) -> None:
        response = await _call(
            self._client, "DELETE", _runs_url(namespace, name), json={"propagationPolicy": "Background"}
        )
        if response.status_code != httpx.codes.NOT_FOUND:
            response.raise_for_status()


def build_kube_app(
    client: httpx.AsyncClient,
    *,
    audience: str = DEFAULT_AUDIENCE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    metrics: SignalMetrics | None = None,
    windows: ThresholdWindows | None = None,
) -> web.Application:
    """The signal endpoint wired to the API server through `client` (see `async_client`): what the
    operator serves. Keep one app (and so one set of threshold windows) per process."""
    dispatcher = SignalDispatcher(KubeScheduleIndex(client), KubeRunCreator(client), windows=windows)
    return build_app(
        tokens=KubeTokenReviewer(client, audience),
        access=KubeAccessReviewer(client),
        dispatcher=dispatcher,
        max_bytes=max_bytes,
        metrics=metrics,
    )
