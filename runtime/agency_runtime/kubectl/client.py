"""A small client for the Kubernetes API over httpx, turning every failure into a sentence a user can act on.

Only what the plugin needs: JSON requests, a streamed Pod log, and knowing why a request failed — no
cluster ("cannot reach"), no CRDs (a 404 under the agency.dev group whose discovery is absent), no such
object (naming the namespace searched), not allowed (the API server's own words).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from agency_runtime.kubectl.errors import (
    ApiError,
    CannotReachCluster,
    CrdsMissing,
    Forbidden,
    KubeconfigError,
    NotFound,
    PluginError,
)
from agency_runtime.kubectl.kubeconfig import Connection

JsonDict = dict[str, Any]
GROUP = "agency.dev"
VERSION = "v1alpha1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
INSTALL_HINT = "kubectl apply --server-side -f crds/ (or helm install agency charts/agency)"


def run_path(namespace: str, name: str = "") -> str:
    return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/agentruns/{name}".rstrip("/")


def kind_path(plural: str, namespace: str | None, name: str = "") -> str:
    """The path of an agency.dev collection (all namespaces when `namespace` is None) or of one object."""
    where = f"namespaces/{namespace}/" if namespace else ""
    return f"/apis/{GROUP_VERSION}/{where}{plural}/{name}".rstrip("/")


def status_message(response: httpx.Response) -> str:
    """The message of the Status object the API server answers with, else the body's text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, Mapping) and body.get("message"):
        return str(body["message"])
    return response.text.strip()[:500]


def _pem_file(folder: Path, name: str, pem: str) -> str:
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(pem)
    return str(path)


def ssl_context(conn: Connection) -> ssl.SSLContext:
    """TLS as the kubeconfig says: its CA (or the system's), its client certificate if any."""
    try:
        if conn.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=conn.ca_file, cadata=conn.ca_data)
        cert, key = conn.client_cert_file, conn.client_key_file
        if (cert or conn.client_cert_data) and (key or conn.client_key_data):
            # ssl loads certificates from files only: inline data lives in a private folder while loading.
            with tempfile.TemporaryDirectory(prefix="kubectl-agency-") as folder:
                cert = cert or _pem_file(Path(folder), "client.crt", conn.client_cert_data or "")
                key = key or _pem_file(Path(folder), "client.key", conn.client_key_data or "")
                ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise KubeconfigError(
            f"cannot use the TLS files of context {conn.context!r} ({conn.source}): {err}"
        ) from err
    return ctx


class Api:
    """The API server of one kubeconfig context."""

    def __init__(self, conn: Connection, *, timeout: float = 15.0) -> None:
        self.conn = conn
        headers = {"Accept": "application/json", "User-Agent": "kubectl-agency"}
        if conn.token:
            headers["Authorization"] = f"Bearer {conn.token}"
        auth = (
            httpx.BasicAuth(conn.username, conn.password or "") if conn.username and not conn.token else None
        )
        self.http = httpx.Client(
            base_url=conn.server, verify=ssl_context(conn), headers=headers, auth=auth, timeout=timeout
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ----- requests ------------------------------------------------------------------------------
    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response, whatever its status; raises only when the API server cannot be reached."""
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise self.unreachable(err) from err

    def unreachable(self, err: Exception) -> CannotReachCluster:
        return CannotReachCluster(
            f"cannot reach the Kubernetes API at {self.conn.server}: {err or type(err).__name__} "
            f"(is KUBECONFIG set? context {self.conn.context!r} from {self.conn.source})"
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        namespace: str | None = None,
        action: str = "",
        **kwargs: Any,
    ) -> JsonDict:
        """The JSON body of a successful response; a PluginError naming `what` otherwise."""
        response = self.send(method, path, **kwargs)
        if response.is_success:
            body: JsonDict = response.json()
            return body
        raise self.error(response, path, what=what, namespace=namespace, action=action or method.lower())

    def get(self, path: str, *, what: str, namespace: str | None = None, **kwargs: Any) -> JsonDict:
        return self.call("GET", path, what=what, namespace=namespace, action="get", **kwargs)

    def stream_lines(
        self, path: str, params: Mapping[str, str], *, what: str, namespace: str
    ) -> Iterator[str]:
        """A streamed text response (a followed Pod log), line by line as it arrives."""
        try:
            with self.http.stream(
                "GET", path, params=params, timeout=httpx.Timeout(15.0, read=None)
            ) as response:
                if not response.is_success:
                    response.read()
                    raise self.error(response, path, what=what, namespace=namespace, action="get")
                yield from response.iter_lines()
        except httpx.TransportError as err:
            raise self.unreachable(err) from err

    # ----- what a failure means ------------------------------------------------------------------
    def error(
        self, response: httpx.Response, path: str, *, what: str, namespace: str | None, action: str
    ) -> PluginError:
        message = status_message(response)
        code = response.status_code
        where = f" in namespace {namespace}" if namespace else ""
        if code == 401:
            return Forbidden(
                f"the Kubernetes API at {self.conn.server} did not accept the credentials of context "
                f"{self.conn.context!r} (401 Unauthorized): {message}"
            )
        if code == 404:
            if path.startswith(f"/apis/{GROUP}/"):
                self.require_kind(_plural_of(path))
            return NotFound(f"{what} not found{where}")
        if code == 403:
            return Forbidden(f"you are not allowed to {action} {what}{where}: {message}")
        return ApiError(f"{action} {what}{where}: the API server answered {code}: {message}")

    def require_kind(self, plural: str, group_version: str = GROUP_VERSION) -> None:
        """Raise CrdsMissing unless the API server serves `plural` in `group_version`."""
        response = self.send("GET", f"/apis/{group_version}")
        if response.status_code == 404:
            raise CrdsMissing(
                f"the Agency CRDs are not installed in this cluster ({self.conn.server} serves no "
                f"{group_version}): {INSTALL_HINT}"
            )
        if response.is_success and plural:
            served = {r.get("name") for r in response.json().get("resources", [])}
            if plural not in served:
                raise CrdsMissing(
                    f"the Agency CRD for {plural}.{group_version.split('/')[0]} is not installed in this "
                    f"cluster ({self.conn.server}): {INSTALL_HINT}"
                )


def _plural_of(path: str) -> str:
    """`agentruns` from /apis/agency.dev/v1alpha1/namespaces/ns/agentruns/name (or a cluster-wide list)."""
    parts = path.split("?")[0].strip("/").split("/")[3:]  # after apis/group/version
    if parts[:1] == ["namespaces"]:
        parts = parts[2:]
    return parts[0] if parts else ""
