"""The operator's settings, read once from the environment when it starts.

Every knob is an `AGENCY_*` variable so the Helm chart sets them as plain env; `Settings.from_env` is
called once (in `__main__`, before the handlers are registered, because timer intervals are handler
arguments) and the same object is put into kopf's `memo` by the startup handler.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class ExecutorKind(StrEnum):
    """Where a run's runtime process lives."""

    POD = "pod"
    LOCAL = "local"


class SettingsError(ValueError):
    """A setting has a value the operator cannot use; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be greater than 0")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _labels(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in _list(env, name):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SettingsError(f"{name}: {part!r} is not key=value")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "")
    return Path(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    """What the operator is configured with; see `from_env` for the variable of each field."""

    executor: ExecutorKind = ExecutorKind.POD
    runtime_image: str = "ghcr.io/agency-dev/agency-runtime:0.1.0"
    runtime_image_pull_policy: str = "IfNotPresent"
    #: The command a run executes: in the Pod's container, or (local executor) as a process.
    runtime_command: tuple[str, ...] = ("python", "-m", "agency_runtime")
    otlp_endpoint: str | None = None
    #: Namespaces to watch; empty means the whole cluster.
    namespaces: tuple[str, ...] = ()
    #: Keep finished runs this long when neither the run nor its policy says otherwise.
    finished_run_ttl_seconds: int = 7 * 24 * 3600
    #: Lifetime of a run's token when its policy does not say (the policy's default is 3600).
    token_ttl_seconds: int = 3600
    #: How often unfinished objects are reconciled again regardless of events (level-based safety net);
    #: a started run whose Pod is watched only every `runs.QUIET_RESYNCS` times that.
    resync_seconds: float = 10.0
    #: Threads that reconcile runs and Agents (the work queue's). A run's reconcile mostly waits on the
    #: API server (its RoleBinding alone ~100 ms: the server's escalation check waits for its cache), so
    #: the number in flight, not the operator's CPU, bounds how many runs start per second. Each thread
    #: may send two more requests beside its own (`apply.set_threads`).
    workers: int = 64
    #: Server-side watch and client-side read timeouts (kopf issue 1120: without them a watch can hang).
    watch_server_timeout_seconds: int = 300
    watch_client_timeout_seconds: int = 330
    metrics_port: int = 9090
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    #: Where the local executor keeps each run's files (run file, token, result, log).
    local_workdir: Path = field(default_factory=lambda: Path("/tmp/agency-runs"))  # noqa: S108
    #: The API server address runs use: in-cluster name for pods; local processes use the operator's own.
    pod_api_server: str = "https://kubernetes.default.svc"
    #: The journal of a run Pod: `kubernetes` (ConfigMaps owned by the run, so a replacement Pod continues
    #: the run), or `file:<dir>` (an emptyDir: lost with the Pod).
    pod_journal: str = "kubernetes"
    #: The journal of a local run: `file` (in the run's folder) or `kubernetes` (as in a Pod).
    local_journal: str = "file"
    #: CIDRs of the Kubernetes API endpoints that run NetworkPolicies allow; empty means read them from
    #: the `kubernetes` Endpoints in `default` at startup.
    api_server_cidrs: tuple[str, ...] = ()
    #: The signal endpoint (CloudEvents in, runs out): its port (0 = not served), address and the audience
    #: senders' tokens must carry; with a certificate and key it is served over TLS.
    signals_port: int = 0
    signals_host: str = "0.0.0.0"  # noqa: S104 - the endpoint is for the cluster; the Service fronts it
    signals_audience: str = "agency.dev/signals"
    signals_tls_cert_file: Path | None = None
    signals_tls_key_file: Path | None = None
    #: The CA bundle that signed the endpoint's certificate, given to every run that may publish signals
    #: so it trusts the endpoint (a private CA, as cert-manager's `ca.crt`); unset: the system's trust.
    signals_ca_file: Path | None = None
    #: The signal endpoint's URL as runs reach it (`{namespace}` is filled in by the runtime). Unset: the
    #: local executor's runs use 127.0.0.1 and the signals port; Pod runs get none (publishing is off).
    run_signal_url: str | None = None
    #: Where the signal endpoint's Pods are, so a run Pod's NetworkPolicy lets it reach them: the
    #: operator's namespace and its Pods' labels (`k=v,k=v`). Unset: no such egress rule (local runs).
    signals_peer_namespace: str | None = None
    signals_peer_labels: tuple[tuple[str, str], ...] = ()
    #: The validating admission webhook (admission.py): its port (0 = not served), the address it listens
    #: on, and the host the apiserver dials (empty: the address; in a cluster the webhook Service's name).
    webhook_port: int = 0
    webhook_addr: str = "0.0.0.0"  # noqa: S104 - the apiserver dials it through the webhook Service
    webhook_host: str | None = None
    #: Test hook (integration tests only): SIGKILL the operator right after it has ensured this step.
    test_crash_after: str | None = None
    #: Test hook: a file holding the instant (RFC 3339) schedules take as now, so tests walk cron slots
    #: without waiting for them; the real clock while the file is missing or empty.
    test_clock_file: Path | None = None

    def signals_url_for_runs(self) -> str | None:
        """Where a run posts its signals, or None when it cannot (endpoint off, or no URL for Pods)."""
        if self.run_signal_url:
            return self.run_signal_url
        if self.signals_port and self.executor is ExecutorKind.LOCAL:
            scheme = "https" if self.signals_tls_cert_file else "http"
            return f"{scheme}://127.0.0.1:{self.signals_port}/namespaces/{{namespace}}/signals"
        return None

    def signals_ca(self) -> str | None:
        """The CA bundle runs trust for the signal endpoint, read afresh (it may be rotated), or None when
        runs publish no signals or trust the system's CAs."""
        if self.signals_ca_file is None or self.signals_url_for_runs() is None:
            return None
        try:
            return self.signals_ca_file.read_text()
        except OSError as err:
            raise SettingsError(
                f"AGENCY_SIGNALS_CA_FILE {self.signals_ca_file} cannot be read ({err.strerror}); runs "
                "could not trust the signal endpoint"
            ) from err

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `AGENCY_*` variables; unset ones keep the defaults above."""
        env = os.environ if env is None else env
        raw_executor = env.get("AGENCY_EXECUTOR", "pod") or "pod"
        try:
            executor = ExecutorKind(raw_executor)
        except ValueError:
            raise SettingsError(f"AGENCY_EXECUTOR={raw_executor!r}: use pod or local") from None
        command = tuple(env.get("AGENCY_RUNTIME_COMMAND", "").split())
        if not command:
            # A local process runs with the operator's own interpreter, where agency_runtime is installed.
            command = (
                (sys.executable, "-m", "agency_runtime")
                if executor is ExecutorKind.LOCAL
                else cls.runtime_command
            )
        defaults = cls()
        cert, key = _path(env, "AGENCY_SIGNALS_TLS_CERT_FILE"), _path(env, "AGENCY_SIGNALS_TLS_KEY_FILE")
        if (cert is None) != (key is None):
            raise SettingsError(
                "set both AGENCY_SIGNALS_TLS_CERT_FILE and AGENCY_SIGNALS_TLS_KEY_FILE, or neither"
            )
        return cls(
            executor=executor,
            runtime_image=env.get("AGENCY_RUNTIME_IMAGE") or defaults.runtime_image,
            runtime_image_pull_policy=env.get("AGENCY_RUNTIME_IMAGE_PULL_POLICY")
            or defaults.runtime_image_pull_policy,
            runtime_command=command,
            otlp_endpoint=env.get("AGENCY_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            namespaces=_list(env, "AGENCY_NAMESPACES"),
            finished_run_ttl_seconds=_int(
                env, "AGENCY_FINISHED_RUN_TTL_SECONDS", defaults.finished_run_ttl_seconds
            ),
            token_ttl_seconds=_int(env, "AGENCY_TOKEN_TTL_SECONDS", defaults.token_ttl_seconds, 600),
            resync_seconds=_float(env, "AGENCY_RESYNC_SECONDS", defaults.resync_seconds),
            workers=_int(env, "AGENCY_WORKERS", defaults.workers, 1),
            watch_server_timeout_seconds=_int(
                env, "AGENCY_WATCH_SERVER_TIMEOUT_SECONDS", defaults.watch_server_timeout_seconds, 1
            ),
            watch_client_timeout_seconds=_int(
                env, "AGENCY_WATCH_CLIENT_TIMEOUT_SECONDS", defaults.watch_client_timeout_seconds, 1
            ),
            metrics_port=_int(env, "AGENCY_METRICS_PORT", defaults.metrics_port),
            liveness_endpoint=env.get("AGENCY_LIVENESS_ENDPOINT") or defaults.liveness_endpoint,
            local_workdir=Path(env.get("AGENCY_LOCAL_WORKDIR") or defaults.local_workdir),
            pod_api_server=env.get("AGENCY_POD_API_SERVER") or defaults.pod_api_server,
            pod_journal=env.get("AGENCY_POD_JOURNAL") or defaults.pod_journal,
            local_journal=env.get("AGENCY_LOCAL_JOURNAL") or defaults.local_journal,
            api_server_cidrs=_list(env, "AGENCY_API_SERVER_CIDRS"),
            signals_port=_int(env, "AGENCY_SIGNALS_PORT", defaults.signals_port),
            signals_host=env.get("AGENCY_SIGNALS_HOST") or defaults.signals_host,
            signals_audience=env.get("AGENCY_SIGNALS_AUDIENCE") or defaults.signals_audience,
            signals_tls_cert_file=_path(env, "AGENCY_SIGNALS_TLS_CERT_FILE"),
            signals_tls_key_file=_path(env, "AGENCY_SIGNALS_TLS_KEY_FILE"),
            signals_ca_file=_path(env, "AGENCY_SIGNALS_CA_FILE"),
            run_signal_url=env.get("AGENCY_RUN_SIGNAL_URL") or None,
            signals_peer_namespace=env.get("AGENCY_SIGNALS_PEER_NAMESPACE") or None,
            signals_peer_labels=_labels(env, "AGENCY_SIGNALS_PEER_LABELS"),
            webhook_port=_int(env, "AGENCY_WEBHOOK_PORT", defaults.webhook_port),
            webhook_addr=env.get("AGENCY_WEBHOOK_ADDR") or defaults.webhook_addr,
            webhook_host=env.get("AGENCY_WEBHOOK_HOST") or None,
            test_crash_after=env.get("AGENCY_TEST_CRASH_AFTER") or None,
            test_clock_file=_path(env, "AGENCY_TEST_CLOCK_FILE"),
        )
