"""Jaeger v2 as a real OTLP backend for the tests: started on free loopback ports, read back over HTTP.

Tests assert on what a real trace backend stored, so exporter, resource and batching mistakes show up
the way a user would see them in Jaeger, not as an in-memory exporter's idea of a span.

The binary is Jaeger v2 (an OpenTelemetry Collector distribution configured by one YAML file), built by
``agency_testbed/build.py``. The config written here runs only what the tests need: the ``otlp``
receiver, ``jaeger_storage`` with an in-memory backend, ``jaeger_storage_exporter`` and the
``jaeger_query`` HTTP API. Everything listens on ports picked free on 127.0.0.1, so several test
sessions can share the machine; the fixed-port extras of the bundled all-in-one config (metrics on
:8888, healthcheckv2, expvar, zpages, pprof, remote sampling, jaeger/zipkin receivers) are left out,
and Jaeger's own tracing is off so it never exports spans to some other session's :4317.

Reading back uses the v1-style JSON API under ``/api/traces`` (the one Jaeger UI uses), not the OTLP-JSON
``/api/v3``: its tag values keep their JSON types (a token count is a number, where OTLP-JSON encodes
``intValue`` as a string) and a span's parent is its ``CHILD_OF`` reference. ``TraceView`` turns that JSON
into typed spans with parent links.

    python -m agency_testbed.jaeger                           # free ports, printed
    python -m agency_testbed.jaeger --ports 4318,4317,16686,16685
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import httpx
import yaml

from agency_testbed.build import bin_dir

LOOPBACK = "127.0.0.1"
STORE = "testbed_memory"
READY_LINE = "Everything is ready"  # logged by the collector once every component has started
BUILD_HINT = "run `make testbed-build` (or `python3 tests/agency_testbed/build.py`) to build it"

Json = dict[str, Any]


class JaegerNotBuilt(RuntimeError):
    """The testbed's Jaeger binary is missing: the tests cannot run without building it first."""


class JaegerStartError(RuntimeError):
    """Jaeger did not come up; the message carries the end of its log."""


class _PortTaken(JaegerStartError):
    """A port picked as free was taken before Jaeger bound it (another session raced us)."""


class TraceNotFound(LookupError):
    """Jaeger has no trace with this id (yet)."""


@dataclass(frozen=True)
class JaegerPorts:
    """Every port the testbed Jaeger listens on; all on 127.0.0.1."""

    otlp_http: int
    otlp_grpc: int
    query_http: int
    query_grpc: int

    @classmethod
    def pick(cls) -> JaegerPorts:
        """Ports free right now, distinct because all four sockets are held open while choosing."""
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(4)]
        try:
            for s in sockets:
                s.bind((LOOPBACK, 0))
            ports = [int(s.getsockname()[1]) for s in sockets]
        finally:
            for s in sockets:
                s.close()
        return cls(*ports)

    @classmethod
    def parse(cls, text: str) -> JaegerPorts:
        """``OTLP_HTTP,OTLP_GRPC,QUERY_HTTP,QUERY_GRPC`` as given on the command line."""
        parts = [int(p) for p in text.split(",")]
        if len(parts) != 4:
            raise ValueError(f"expected 4 comma-separated ports, got {text!r}")
        return cls(*parts)


def render_config(ports: JaegerPorts, max_traces: int = 100_000, otlp_host: str = LOOPBACK) -> str:
    """The Jaeger v2 YAML config: OTLP in, memory storage, query API out, nothing on a fixed port.

    The query API always listens on loopback; OTLP on `otlp_host` (the kind demo uses the Docker
    network's gateway, so Pods in kind nodes can export to a Jaeger on the host)."""

    def addr(port: int, host: str = LOOPBACK) -> str:
        return f"{host}:{port}"

    config: Json = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                # No batch processor: spans are stored as soon as the OTLP request is handled.
                "traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]},
            },
            "telemetry": {
                # Level none turns off the collector's own Prometheus server (default :8888).
                "metrics": {"level": "none"},
                "traces": {"level": "none"},
                "logs": {"level": "info"},
            },
        },
        "extensions": {
            "jaeger_storage": {"backends": {STORE: {"memory": {"max_traces": max_traces}}}},
            "jaeger_query": {
                "storage": {"traces": STORE},
                # On by default in v2: would export Jaeger's own spans to localhost:4317.
                "enable_tracing": False,
                "http": {"endpoint": addr(ports.query_http)},
                "grpc": {"endpoint": addr(ports.query_grpc)},
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": addr(ports.otlp_grpc, otlp_host)},
                    "http": {"endpoint": addr(ports.otlp_http, otlp_host)},
                }
            }
        },
        "exporters": {"jaeger_storage_exporter": {"trace_storage": STORE}},
    }
    return yaml.safe_dump(config, sort_keys=False)


def jaeger_binary() -> Path:
    """The built Jaeger v2 binary, or a JaegerNotBuilt saying how to build it."""
    path = bin_dir() / "jaeger"
    if not os.access(path, os.X_OK):
        raise JaegerNotBuilt(f"the testbed's Jaeger binary is missing at {path}; {BUILD_HINT}")
    return path


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _child_env() -> dict[str, str]:
    """Our environment without OTEL_* variables, which the Go SDK inside Jaeger would obey."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def _accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Jaeger:
    """A Jaeger v2 process for the tests, with helpers over its HTTP query API.

    Use as a context manager; ``stop()`` (also registered with atexit) sends SIGTERM to the pid, then
    SIGKILL after ``stop_timeout``. Without ``ports``, free ones are picked and start is retried with
    new ones if another process wins a port in between.
    """

    def __init__(
        self,
        binary: Path | None = None,
        ports: JaegerPorts | None = None,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        max_traces: int = 100_000,
        otlp_host: str = LOOPBACK,
    ) -> None:
        self._binary = binary
        self._otlp_host = otlp_host
        self._fixed_ports = ports
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._max_traces = max_traces
        self._ports: JaegerPorts | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._http: httpx.Client | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start Jaeger and return once it stores and serves traces; JaegerStartError otherwise."""
        if self._proc is not None:
            raise RuntimeError("Jaeger is already running")
        binary = self._binary or jaeger_binary()
        attempts = 1 if self._fixed_ports else 3
        for attempt in range(1, attempts + 1):
            ports = self._fixed_ports or JaegerPorts.pick()
            try:
                self._launch(binary, ports)
                return
            except _PortTaken:
                if attempt == attempts:
                    raise

    def _launch(self, binary: Path, ports: JaegerPorts) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="agency-jaeger-"))
        config = workdir / "config.yaml"
        config.write_text(render_config(ports, self._max_traces, self._otlp_host))
        log = workdir / "jaeger.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(binary), "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=_child_env(),
                start_new_session=True,
            )
        self._proc, self._ports, self._workdir = proc, ports, workdir
        self._http = httpx.Client(base_url=f"http://{LOOPBACK}:{ports.query_http}", timeout=10.0)
        atexit.register(self.stop)
        try:
            self._wait_ready(proc, ports, log)
        except JaegerStartError:
            self.stop(keep_workdir=True)
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], ports: JaegerPorts, log: Path) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                tail = log_tail(log)
                kind = _PortTaken if "address already in use" in tail else JaegerStartError
                raise kind(f"Jaeger exited with code {code} while starting; log {log}:\n{tail}")
            if READY_LINE in log.read_text(errors="replace") and self._serving(ports):
                return
            time.sleep(0.2)
        raise JaegerStartError(
            f"Jaeger was not ready after {self._startup_timeout:.0f}s (query API {self.query_url}, "
            f"OTLP HTTP {self.otlp_http_endpoint}); log {log}:\n{log_tail(log)}"
        )

    def _serving(self, ports: JaegerPorts) -> bool:
        host = self._otlp_host
        if not (_accepts(ports.otlp_http, host) and _accepts(ports.otlp_grpc, host)):
            return False
        try:
            return self._client.get("/api/services", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, keep_workdir: bool = False) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its temp dir; safe to call twice."""
        atexit.unregister(self.stop)
        if self._http is not None:
            self._http.close()
            self._http = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._workdir is not None and not keep_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def wait(self) -> int:
        """Block until the process exits on its own; its exit code."""
        if self._proc is None:
            raise RuntimeError("Jaeger is not running")
        return self._proc.wait()

    # -- endpoints -----------------------------------------------------------------------------------

    @property
    def ports(self) -> JaegerPorts:
        if self._ports is None:
            raise RuntimeError("Jaeger is not running")
        return self._ports

    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL for OTLP/HTTP; exporters post to ``{this}/v1/traces``."""
        return f"http://{self._otlp_host}:{self.ports.otlp_http}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{self._otlp_host}:{self.ports.otlp_grpc}"

    @property
    def query_url(self) -> str:
        """Jaeger UI and HTTP query API."""
        return f"http://{LOOPBACK}:{self.ports.query_http}"

    @property
    def log_path(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("Jaeger is not running")
        return self._workdir / "jaeger.log"

    # -- query API -----------------------------------------------------------------------------------

    @property
    def _client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("Jaeger is not running")
        return self._http

    def services(self) -> list[str]:
        """Service names Jaeger has stored spans for."""
        resp = self._client.get("/api/services")
        resp.raise_for_status()
        return list(resp.json().get("data") or [])

    def traces(self, service: str, limit: int = 100) -> list[Json]:
        """Recent traces with a span from ``service``, as v1-style trace JSON."""
        resp = self._client.get("/api/traces", params={"service": service, "limit": limit})
        resp.raise_for_status()
        return list(resp.json().get("data") or [])

    def trace(self, trace_id: str) -> Json:
        """One trace as v1-style JSON (``traceID``, ``spans``, ``processes``); TraceNotFound if absent."""
        resp = self._client.get(f"/api/traces/{normalize_trace_id(trace_id)}")
        if resp.status_code == 404:
            raise TraceNotFound(trace_id)
        resp.raise_for_status()
        data: list[Json] = resp.json().get("data") or []
        if not data:
            raise TraceNotFound(trace_id)
        return data[0]

    def wait_for_trace(self, trace_id: str, min_spans: int = 1, timeout: float = 30.0) -> Json:
        """The trace once it holds at least ``min_spans`` spans: exporters batch, so spans arrive late."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            try:
                found = self.trace(trace_id)
                seen = len(found.get("spans") or [])
                if seen >= min_spans:
                    return found
            except TraceNotFound:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"trace {trace_id} had {seen} span(s) in Jaeger after {timeout:.0f}s, "
                    f"wanted at least {min_spans} (services seen: {self.services()})"
                )
            time.sleep(0.2)


# -- typed view of the v1-style trace JSON -------------------------------------------------------------


def normalize_trace_id(trace_id: str) -> str:
    """32 lowercase hex digits: Jaeger prints ids without leading zeros, OTel SDKs with them."""
    return trace_id.lower().zfill(32)


def normalize_span_id(span_id: str) -> str:
    return span_id.lower().zfill(16)


def _key_values(items: Sequence[Mapping[str, Any]] | None) -> dict[str, object]:
    return {str(kv["key"]): kv.get("value") for kv in items or ()}


@dataclass(frozen=True)
class Span:
    """One stored span: what a user sees in the Jaeger UI, with attributes as plain JSON values."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start_us: int
    duration_us: int
    attributes: Mapping[str, object]
    resource: Mapping[str, object]
    events: tuple[Mapping[str, object], ...]

    @classmethod
    def from_json(cls, span: Mapping[str, Any], processes: Mapping[str, Any]) -> Span:
        trace_id = normalize_trace_id(str(span["traceID"]))
        parent: str | None = None
        for ref in span.get("references") or ():
            if ref.get("refType") == "CHILD_OF" and normalize_trace_id(str(ref["traceID"])) == trace_id:
                parent = normalize_span_id(str(ref["spanID"]))
                break
        if parent is None and span.get("parentSpanID"):  # deprecated field, kept by older servers
            parent = normalize_span_id(str(span["parentSpanID"]))
        process: Mapping[str, Any] = span.get("process") or processes.get(str(span.get("processID")), {})
        return cls(
            trace_id=trace_id,
            span_id=normalize_span_id(str(span["spanID"])),
            parent_span_id=parent,
            name=str(span["operationName"]),
            service=str(process.get("serviceName", "")),
            start_us=int(span.get("startTime", 0)),
            duration_us=int(span.get("duration", 0)),
            attributes=_key_values(span.get("tags")),
            resource=_key_values(process.get("tags")),
            events=tuple(_key_values(log.get("fields")) for log in span.get("logs") or ()),
        )


@dataclass(frozen=True)
class TraceView:
    """A trace as typed spans with parent links, for asserting on span trees."""

    trace_id: str
    spans: tuple[Span, ...]

    @classmethod
    def from_json(cls, trace: Mapping[str, Any]) -> TraceView:
        processes: Mapping[str, Any] = trace.get("processes") or {}
        spans = tuple(Span.from_json(s, processes) for s in trace.get("spans") or ())
        spans = tuple(sorted(spans, key=lambda s: (s.start_us, s.name)))
        return cls(trace_id=normalize_trace_id(str(trace["traceID"])), spans=spans)

    def named(self, name: str) -> Span:
        """The one span called ``name``; LookupError naming the spans present otherwise."""
        matches = [s for s in self.spans if s.name == name]
        if len(matches) != 1:
            raise LookupError(
                f"{len(matches)} spans named {name!r} in trace {self.trace_id}:\n{self.outline()}"
            )
        return matches[0]

    def all_named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def span(self, span_id: str) -> Span:
        wanted = normalize_span_id(span_id)
        for s in self.spans:
            if s.span_id == wanted:
                return s
        raise LookupError(f"no span {span_id} in trace {self.trace_id}")

    @property
    def roots(self) -> list[Span]:
        """Spans without a parent in this trace (a parent that never arrived also makes a root)."""
        ids = {s.span_id for s in self.spans}
        return [s for s in self.spans if s.parent_span_id not in ids]

    def children(self, parent: Span) -> list[Span]:
        """Direct children, in start order."""
        return [s for s in self.spans if s.parent_span_id == parent.span_id]

    def parent(self, child: Span) -> Span | None:
        if child.parent_span_id is None:
            return None
        try:
            return self.span(child.parent_span_id)
        except LookupError:
            return None

    def outline(self) -> str:
        """Span names indented by depth, children in start order: a span tree in one comparable string."""
        lines: list[str] = []

        def walk(span: Span, depth: int) -> None:
            lines.append("  " * depth + span.name)
            for child in self.children(span):
                walk(child, depth + 1)

        for root in self.roots:
            walk(root, 0)
        return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run Jaeger in the foreground, print its endpoints, stop it on Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m agency_testbed.jaeger", description=main.__doc__)
    parser.add_argument(
        "--ports",
        type=JaegerPorts.parse,
        help="fixed OTLP_HTTP,OTLP_GRPC,QUERY_HTTP,QUERY_GRPC ports (default: free ones)",
    )
    parser.add_argument("--binary", type=Path, help="Jaeger v2 binary (default: the testbed build)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with Jaeger(args.binary, args.ports) as jaeger:
            print(f"Jaeger UI / query API: {jaeger.query_url}")
            print(f"OTLP/HTTP:             {jaeger.otlp_http_endpoint}")
            print(f"OTLP/gRPC:             {jaeger.otlp_grpc_endpoint}")
            print(f"log:                   {jaeger.log_path}")
            print(f"export OTEL_EXPORTER_OTLP_ENDPOINT={jaeger.otlp_http_endpoint}", flush=True)
            try:
                code = jaeger.wait()
            except KeyboardInterrupt:
                return 0
            print(f"Jaeger exited with code {code}:\n{log_tail(jaeger.log_path)}", file=sys.stderr)
            return 1
    except (JaegerNotBuilt, JaegerStartError) as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
