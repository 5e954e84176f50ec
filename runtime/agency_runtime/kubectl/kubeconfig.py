"""Reading kubeconfig the way kubectl does: `--kubeconfig`, else every file in KUBECONFIG, else
~/.kube/config; the first file to name a cluster, user or context wins; `--context` and `-n` override.

Supported credentials: client certificates, bearer tokens (`token`, `tokenFile`) and basic auth, with
the cluster's CA (file or data) or `insecure-skip-tls-verify`. Exec plugins and auth providers are not:
running other programs to get a token is out of scope, and the error says so instead of failing later
with a 401.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agency_runtime.kubectl.errors import KubeconfigError

JsonDict = dict[str, Any]
#: Fields holding file paths, by section: kubectl reads them relative to the kubeconfig that names them.
_PATH_FIELDS = {
    "cluster": ("certificate-authority",),
    "user": ("client-certificate", "client-key", "tokenFile"),
}


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to log in to it, resolved from one kubeconfig context."""

    server: str
    namespace: str
    context: str
    source: str
    """The kubeconfig file(s) read, for error messages."""
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    token: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: str | None = None
    client_key_data: str | None = None
    username: str | None = None
    password: str | None = None


def kubeconfig_paths(explicit: str | None, env: Mapping[str, str]) -> list[Path]:
    """The files to read, in kubectl's order of precedence."""
    if explicit:
        return [Path(explicit).expanduser()]
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return [Path(p).expanduser() for p in listed]
    home = env.get("HOME") or str(Path.home())
    return [Path(home) / ".kube" / "config"]


def _absolute(entry: Mapping[str, Any], section: str, base: Path) -> JsonDict:
    """The entry's section with its file paths made absolute against the kubeconfig's folder."""
    body = dict(entry.get(section) or {})
    for key in _PATH_FIELDS.get(section, ()):
        value = body.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            body[key] = str(base / value)
        elif isinstance(value, str) and value:
            body[key] = str(Path(value).expanduser())
    return {**entry, section: body}


def merge(documents: Sequence[tuple[Path, Mapping[str, Any]]]) -> JsonDict:
    """One kubeconfig from several: first definition of each named entry wins, as does the first
    current-context (kubectl's merge rules)."""
    merged: JsonDict = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    for path, doc in documents:
        base = path.parent
        for plural, section in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(plural) or []:
                if isinstance(entry, Mapping) and entry.get("name") not in merged[plural]:
                    merged[plural][entry.get("name")] = _absolute(entry, section, base)[section]
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


def _decode(value: str, what: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise KubeconfigError(f"the kubeconfig's {what} is not valid base64 PEM: {err}") from err


def resolve(
    merged: Mapping[str, Any], source: str, *, context: str | None = None, namespace: str | None = None
) -> Connection:
    """The connection of `context` (default: the current one). Pure: reads no file but a tokenFile."""
    name = context or merged.get("current-context") or ""
    if not name:
        raise KubeconfigError(
            f"no current context in {source}: pass --context or run kubectl config use-context"
        )
    ctx = merged["contexts"].get(name)
    if ctx is None:
        raise KubeconfigError(f"context {name!r} is not defined in {source}")
    cluster = merged["clusters"].get(ctx.get("cluster"))
    if cluster is None or not cluster.get("server"):
        raise KubeconfigError(
            f"context {name!r} names cluster {ctx.get('cluster')!r}, not defined in {source}"
        )
    user_name = ctx.get("user")
    user: Mapping[str, Any] = (merged["users"].get(user_name) or {}) if user_name else {}
    if user_name and user_name not in merged["users"]:
        raise KubeconfigError(f"context {name!r} names user {user_name!r}, not defined in {source}")
    for unsupported, what in (("exec", "an exec plugin"), ("auth-provider", "an auth provider")):
        if user.get(unsupported):
            detail = user[unsupported].get("command") or user[unsupported].get("name") or ""
            raise KubeconfigError(
                f"kubeconfig user {user_name!r} (context {name!r}) logs in with {what}"
                f"{f' ({detail})' if detail else ''}, which kubectl-agency does not run: it supports client "
                "certificates, bearer tokens (token, tokenFile) and basic auth. Use a context with one of "
                "those, e.g. a token from `kubectl create token`."
            )
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = Path(user["tokenFile"]).read_text().strip()
        except OSError as err:
            raise KubeconfigError(f"cannot read the tokenFile of user {user_name!r}: {err}") from err
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        namespace=namespace or ctx.get("namespace") or "default",
        context=name,
        source=source,
        ca_file=cluster.get("certificate-authority"),
        ca_data=_decode(cluster["certificate-authority-data"], "certificate-authority-data")
        if cluster.get("certificate-authority-data")
        else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=token or None,
        client_cert_file=user.get("client-certificate"),
        client_key_file=user.get("client-key"),
        client_cert_data=_decode(user["client-certificate-data"], "client-certificate-data")
        if user.get("client-certificate-data")
        else None,
        client_key_data=_decode(user["client-key-data"], "client-key-data")
        if user.get("client-key-data")
        else None,
        username=user.get("username"),
        password=user.get("password"),
    )


def load(
    explicit: str | None = None,
    *,
    context: str | None = None,
    namespace: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Connection:
    """The connection kubectl would use with the same flags and environment."""
    paths = kubeconfig_paths(explicit, os.environ if env is None else env)
    source = os.pathsep.join(str(p) for p in paths)
    documents: list[tuple[Path, Mapping[str, Any]]] = []
    for path in paths:
        if not path.exists():
            if explicit:
                raise KubeconfigError(f"the kubeconfig {path} does not exist")
            continue
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise KubeconfigError(f"cannot read the kubeconfig {path}: {err}") from err
        if not isinstance(doc, Mapping):
            raise KubeconfigError(f"the kubeconfig {path} is not a kubeconfig (expected a mapping)")
        documents.append((path, doc))
    if not documents:
        raise KubeconfigError(
            f"no kubeconfig found (looked at {source}): set KUBECONFIG or pass --kubeconfig, as for kubectl"
        )
    return resolve(merge(documents), source, context=context, namespace=namespace)
