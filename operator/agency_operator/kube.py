"""A small synchronous REST client for the Kubernetes API that speaks plain dicts.

The builders produce dicts and the reconcilers compare dicts, so the client does too: no generated
model classes between them. Authentication is whatever `kubernetes.config` loads (kubeconfig or the
in-cluster ServiceAccount, with token refresh), applied to an `httpx.Client` on every request.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
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


#: Each thread has a client of its own (`Kube(per_thread=...)`): a thread sends one request at a time, so
#: its connection stays open for its next one. One client shared by the operator's threads (the work
#: queue's 16, kopf's 16, 16 for side-by-side requests, the schedule wake-ups) cost a TLS handshake
#: for every request past the 20 idle connections httpx keeps, and, with a larger pool, a pass over every
#: connection (a select() each) for every request: both showed as a fifth to a quarter of the operator's
#: CPU in a burst.
PER_THREAD_LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=60.0)


class Kube:
    """GET/POST/PATCH/DELETE returning the API server's JSON; errors as `KubeError`."""

    def __init__(
        self,
        http: httpx.Client,
        connection: Connection,
        *,
        per_thread: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.http = http
        self.connection = connection
        self._per_thread = per_thread
        #: Read without the lock (one thread only ever looks up its own entry); changed under it.
        self._clients: dict[threading.Thread, httpx.Client] = {}
        self._clients_lock = threading.Lock()

    def _client(self) -> httpx.Client:
        """This thread's client (made on its first request), or the one client without `per_thread`."""
        if self._per_thread is None:
            return self.http
        thread = threading.current_thread()
        client = self._clients.get(thread)
        if client is None:
            client = self._per_thread()
            with self._clients_lock:
                ended = [other for other in self._clients if not other.is_alive()]
                for other in ended:  # the clients of threads that ended are closed, not left to leak
                    self._clients.pop(other).close()
                self._clients[thread] = client
        return client

    @classmethod
    def from_environment(
        cls,
        timeout: float = 30.0,
        kubeconfig: Path | None = None,
        *,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
    ) -> Kube:
        """Log in like kubectl: `kubeconfig`, else KUBECONFIG (or ~/.kube/config), else the in-cluster
        ServiceAccount. `event_hooks` (httpx's) are given to every thread's client."""
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
        auth = _ConfigAuth(configuration)

        def make_client() -> httpx.Client:
            return httpx.Client(
                base_url=configuration.host,
                verify=context if configuration.verify_ssl else False,
                auth=auth,
                timeout=timeout,
                limits=PER_THREAD_LIMITS,
                event_hooks=dict(event_hooks or {}),
            )

        return cls(make_client(), Connection(host=configuration.host, ca_file=ca), per_thread=make_client)

    def close(self) -> None:
        """Close the shared client and every thread's."""
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
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
            lambda: self._client().request(method, path, json=body, params=params, headers=headers)
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
        response = self._client().get(path, params=params)
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

    def patch_status(self, path: str, status: JsonDict) -> JsonDict | None:
        """Merge-patch `status` into the object at `path`: the object as it is now, or None when it is gone
        (deleted while it was being reconciled: there is nothing left to report on, which is not an
        error)."""
        try:
            return self.patch(f"{path}/status", {"status": status})
        except KubeError as err:
            if err.not_found:
                return None
            raise

    def delete(self, path: str, *, propagation: str = "Background") -> bool:
        """Delete if present; True if something was deleted. Background: the GC takes the dependents."""
        try:
            self.request("DELETE", path, {"propagationPolicy": propagation})
        except KubeError as err:
            if err.not_found:
                return False
            raise
        return True
