"""A small synchronous REST client for the Kubernetes API that speaks plain dicts.

The builders produce dicts and the reconcilers compare dicts, so the client does too: no generated
model classes between them. Authentication is whatever `kubernetes.config` loads (kubeconfig or the
in-cluster ServiceAccount, with token refresh), applied to an `httpx.Client` on every request.
"""

from __future__ import annotations

import ssl
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# One error type and one path builder for both clients: the operator reuses the runtime's.
from agency_runtime.kube import JSON_PATCH, MERGE_PATCH, send_throttled
from agency_runtime.kube import KubeApiError as KubeError
from agency_runtime.kube import resource_path as path_for

JsonDict = dict[str, Any]

__all__ = ["JSON_PATCH", "MERGE_PATCH", "Connection", "Kube", "KubeError", "path_for"]


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to trust it; the CA file is also given to local runs."""

    host: str
    ca_file: Path | None


class _ConfigAuth(httpx.Auth):
    """Adds the bearer token the kubernetes configuration holds now (it refreshes in-cluster tokens)."""

    def __init__(self, configuration: Any) -> None:
        self.configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # auth_settings() asks the configuration for the current key (refreshing it if it can), in
        # whichever slot this client version keeps it (`BearerToken` in recent ones).
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                request.headers[setting["key"]] = setting["value"]
        yield request


#: Keep every connection the operator's threads use at once (kopf's 16 workers, 16 for side-by-side
#: requests, the schedule wake-ups): httpx keeps 20 by default and closes the rest after each request, so
#: under a burst every request past the twentieth paid a new TLS handshake, a quarter of the operator's CPU
#: at 1,000 runs (and as much again in the API server).
CONNECTION_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=60.0)


class Kube:
    """GET/POST/PATCH/DELETE returning the API server's JSON; errors as `KubeError`."""

    def __init__(self, http: httpx.Client, connection: Connection) -> None:
        self.http = http
        self.connection = connection

    @classmethod
    def from_environment(cls, timeout: float = 30.0, kubeconfig: Path | None = None) -> Kube:
        """Log in like kubectl: `kubeconfig`, else KUBECONFIG (or ~/.kube/config), else the in-cluster
        ServiceAccount."""
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                client_configuration=configuration,
            )
        except config.ConfigException:
            config.load_incluster_config(client_configuration=configuration)
        ca = Path(configuration.ssl_ca_cert) if configuration.ssl_ca_cert else None
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if configuration.cert_file and configuration.key_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        http = httpx.Client(
            base_url=configuration.host,
            verify=context if configuration.verify_ssl else False,
            auth=_ConfigAuth(configuration),
            timeout=timeout,
            limits=CONNECTION_LIMITS,
        )
        return cls(http, Connection(host=configuration.host, ca_file=ca))

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
        accept: str | None = None,
    ) -> JsonDict:
        headers = {"Content-Type": content_type} if body is not None else {}
        if accept is not None:
            headers["Accept"] = accept
        response = send_throttled(
            lambda: self.http.request(method, path, json=body, params=params, headers=headers)
        )
        if response.status_code >= 400:
            try:
                status = response.json()
            except ValueError:
                status = {}
            raise KubeError(
                response.status_code, str(status.get("reason", "")), str(status.get("message", response.text))
            )
        if not response.content:
            return {}
        result: JsonDict = response.json()
        return result

    def text(self, path: str, params: Mapping[str, str] | None = None) -> str | None:
        """A plain-text resource (a Pod's log); None when the server cannot give it."""
        response = self.http.get(path, params=params)
        return response.text if response.status_code == 200 else None

    def get(self, path: str, params: Mapping[str, str] | None = None) -> JsonDict:
        return self.request("GET", path, params=params)

    def get_or_none(self, path: str) -> JsonDict | None:
        try:
            return self.get(path)
        except KubeError as err:
            if err.not_found:
                return None
            raise

    def list(
        self, path: str, label_selector: str | None = None, *, field_selector: str | None = None
    ) -> list[JsonDict]:
        params = {"labelSelector": label_selector} if label_selector else {}
        if field_selector:
            params["fieldSelector"] = field_selector
        items: list[JsonDict] = self.get(path, params=params or None).get("items", [])
        return items

    def names(self, path: str, *, page: int = 500) -> Iterator[tuple[str, str]]:
        """(namespace, name) of every object under a collection path, read as metadata only and in pages.

        What a pass over many objects needs when each is read afresh anyway: a full LIST of 5,000 AgentRuns
        is tens of MB to serialize, send and parse, where the names are a small part of that, and a page at
        a time keeps at most `page` of them in memory."""
        accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
        params = {"limit": str(page)}
        while True:
            answer = self.request("GET", path, params=params, accept=accept)
            for item in answer.get("items") or []:  # an empty PartialObjectMetadataList has `items: null`
                meta = item["metadata"]
                yield meta.get("namespace", ""), meta["name"]
            more = (answer.get("metadata") or {}).get("continue")
            if not more:
                return
            params = {"limit": str(page), "continue": more}

    def create(self, path: str, body: JsonDict) -> JsonDict:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> JsonDict:
        return self.request("PATCH", path, body, content_type=content_type)

    def patch_status(self, path: str, status: JsonDict) -> bool:
        """Merge-patch `status` into the object at `path`; False when the object is gone (deleted while it
        was being reconciled: there is nothing left to report on, which is not an error)."""
        try:
            self.patch(f"{path}/status", {"status": status})
        except KubeError as err:
            if err.not_found:
                return False
            raise
        return True

    def delete(self, path: str, *, propagation: str = "Background") -> bool:
        """Delete if present; True if something was deleted. Background: the GC takes the dependents."""
        try:
            self.request("DELETE", path, {"propagationPolicy": propagation})
        except KubeError as err:
            if err.not_found:
                return False
            raise
        return True
