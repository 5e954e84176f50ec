"""A small synchronous REST client for the Kubernetes API that speaks plain dicts.

The builders produce dicts and the reconcilers compare dicts, so the client does too: no generated
model classes between them. Authentication is whatever `kubernetes.config` loads (kubeconfig or the
in-cluster ServiceAccount, with token refresh), applied to every request; each thread sends through a
kept-alive connection of its own (`wire.py`).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from agency_operator.wire import Answer, HTTPWire, Wire

# One error type and one path builder for both clients: the operator reuses the runtime's.
from agency_runtime.kube import JSON_PATCH, MERGE_PATCH, answer_json, send_throttled
from agency_runtime.kube import KubeApiError as KubeError
from agency_runtime.kube import resource_path as path_for

JsonDict = dict[str, Any]

__all__ = ["JSON_PATCH", "MERGE_PATCH", "Connection", "Kube", "KubeError", "path_for"]

#: Called with (method, path) as each request is sent (tests hold or count them).
RequestHook = Callable[[str, str], None]


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to trust it; the CA file is also given to local runs."""

    host: str
    ca_file: Path | None


#: How long the auth headers read from the kubernetes configuration are reused. Asked for its key, the
#: configuration refreshes it, and from a kubeconfig that means applying the kubeconfig to it again (its
#: host setter re-derives the proxies from the environment): 46 us, ~3% of the operator's CPU in a fleet
#: burst when asked on every request. A ServiceAccount token is rotated long before it expires, so
#: seconds late is soon enough.
AUTH_REUSE_SECONDS = 10.0


def _config_auth(
    configuration: Any, *, reuse: float = AUTH_REUSE_SECONDS, clock: Callable[[], float] = time.monotonic
) -> Callable[[], dict[str, str]]:
    """The bearer token the kubernetes configuration holds (it refreshes in-cluster tokens), read again
    once the last read is `reuse` seconds old."""
    lock = threading.Lock()
    read_at: float = 0.0
    last: dict[str, str] | None = None  # the headers of the last read; None until the first request

    def read() -> dict[str, str]:
        # auth_settings() asks the configuration for the current key (refreshing it if it can), in
        # whichever slot this client version keeps it (`BearerToken` in recent ones).
        return {
            setting["key"]: setting["value"]
            for setting in configuration.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        }

    def headers() -> dict[str, str]:
        nonlocal read_at, last
        now = clock()
        with lock:
            if last is None or now - read_at >= reuse:
                read_at, last = now, read()
            return dict(last)

    return headers


class Kube:
    """GET/POST/PATCH/DELETE returning the API server's JSON; errors as `KubeError`.

    Each thread has a wire of its own, made by `connect` on its first request: a thread sends one
    request at a time, so its connection stays open for its next one. One pool shared by the
    operator's threads (the work queue's 16, kopf's 16, 16 for side-by-side requests, the schedule
    wake-ups) cost a TLS handshake for every request past the idle connections it kept, or a pass over
    every connection for every request: both showed as a fifth to a quarter of the operator's CPU in a
    burst."""

    def __init__(
        self,
        connect: Callable[[], Wire],
        connection: Connection,
        *,
        auth: Callable[[], Mapping[str, str]] | None = None,
        on_request: RequestHook | None = None,
    ) -> None:
        self.connection = connection
        self._connect = connect
        self._auth = auth
        self._on_request = on_request
        #: Read without the lock (one thread only ever looks up its own entry); changed under it.
        self._wires: dict[threading.Thread, Wire] = {}
        self._wires_lock = threading.Lock()

    def _wire(self) -> Wire:
        """This thread's wire, made on its first request."""
        thread = threading.current_thread()
        wire = self._wires.get(thread)
        if wire is None:
            wire = self._connect()
            with self._wires_lock:
                ended = [other for other in self._wires if not other.is_alive()]
                for other in ended:  # the wires of threads that ended are closed, not left to leak
                    self._wires.pop(other).close()
                self._wires[thread] = wire
        return wire

    @classmethod
    def from_environment(
        cls,
        timeout: float = 30.0,
        kubeconfig: Path | None = None,
        *,
        on_request: RequestHook | None = None,
    ) -> Kube:
        """Log in like kubectl: `kubeconfig`, else KUBECONFIG (or ~/.kube/config), else the in-cluster
        ServiceAccount. `on_request` sees every request as it is sent."""
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
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        host: str = configuration.host
        return cls(
            lambda: HTTPWire(host, context=context, timeout=timeout),
            Connection(host=host, ca_file=ca),
            auth=_config_auth(configuration),
            on_request=on_request,
        )

    def close(self) -> None:
        """Close every thread's wire."""
        with self._wires_lock:
            wires, self._wires = list(self._wires.values()), {}
        for wire in wires:
            wire.close()

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        accept: str | None = None,
    ) -> Answer:
        headers = dict(self._auth()) if self._auth is not None else {}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body, separators=(",", ":")).encode()
        if accept is not None:
            headers["Accept"] = accept
        target = f"{path}?{urlencode(params)}" if params else path

        def send() -> Answer:
            if self._on_request is not None:
                self._on_request(method, path)
            return self._wire().send(method, target, content, headers)

        return send_throttled(send)

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
        return answer_json(
            self._send(method, path, body, params=params, content_type=content_type, accept=accept)
        )

    def text(self, path: str, params: Mapping[str, str] | None = None) -> str | None:
        """A plain-text resource (a Pod's log); None when the server cannot give it."""
        response = self._send("GET", path, params=params, accept="text/plain, */*")
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
