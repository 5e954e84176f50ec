"""The `local` executor: the runtime as a process on the operator's machine, for development and tests.

The process gets exactly the environment a Pod of the run gets (same `build_run_env`, local paths), a
token from a TokenRequest for the run's ServiceAccount with the policy's audience and lifetime, and the
model keys (`AGENCY_MODEL_API_KEY`, a fallback's or the judge's own) read from their Secrets (never
written to a file). Besides that it inherits only what any process needs to start (PATH, HOME, locale),
as an image would provide them.

Each run has a folder (`<workdir>/<namespace>/<name>-<uid>`) with the run file, the token, the CA, the
pid, the result and the log. The pid file is what makes starting idempotent across operator restarts: a
run whose folder has one is never started again, and a restarted operator follows the old process by pid.
An operator can die between starting the process and writing its pid, so the process waits (`GATE`)
until the pid file names it before it becomes the runtime: one that finds another pid there (the next
operator started the run again), or none in time, leaves without running. A run never runs twice.

A run deleted while no operator ran leaves its folder (and maybe its process) behind: `sweep`, at the
next operator's start, stops and removes those whose run no longer exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agency_operator import names
from agency_operator.credentials import read_model_keys
from agency_operator.environment import SIGNAL_CA, SIGNAL_TOKEN, Placement, build_run_env, signal_env
from agency_operator.executors import Launch, Observation, Progress, parse_result
from agency_operator.kube import JsonDict, Kube, path_for
from agency_operator.runfile import run_file_text
from agency_operator.settings import Settings
from agency_operator.token import request_token
from agency_runtime.api.meta import API_VERSION
from agency_runtime.api.policy import AgentPolicy

PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
#: `sh -c GATE agency-runtime <pid file> <runtime command...>`: wait (up to about a minute) until the pid
#: file exists, then become the runtime (exec keeps the pid) only if it holds this process's pid.
GATE = (
    'i=0; while [ ! -s "$1" ] && [ "$i" -lt 6000 ]; do sleep 0.01; i=$((i + 1)); done; '
    'recorded=; [ -s "$1" ] && read -r recorded < "$1"; [ "$recorded" = "$$" ] || exit 0; '
    'shift; exec "$@"'
)
#: Renew a local run's token after this share of its lifetime, as the kubelet does for projected tokens.
TOKEN_RENEW_AT = 0.8


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    partial.replace(path)


def _pid_file(folder: Path, attempt: int) -> Path:
    return folder / ("pid" if attempt == 0 else f"pid-{attempt}")


def _result_file(folder: Path, attempt: int) -> Path:
    return folder / ("result.json" if attempt == 0 else f"result-{attempt}.json")


def _latest_attempt(folder: Path) -> int | None:
    attempts = [0 if p.name == "pid" else int(p.name.removeprefix("pid-")) for p in folder.glob("pid*")]
    return max(attempts) if attempts else None


def process_running(pid: int) -> bool:
    """Whether process `pid` still runs. A zombie has ended: a runtime whose operator was killed is
    reparented to PID 1, and a PID 1 that does not reap (some container init processes) would otherwise
    keep it "running" for every later operator."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs: trust the signal
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class LocalExecutor:
    event_driven = False

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.token_ttl: dict[str, int] = {}

    def folder(self, body: Mapping[str, Any]) -> Path:
        meta = body["metadata"]
        return self.settings.local_workdir / str(meta["namespace"]) / f"{meta['name']}-{meta['uid']}"

    def placement(self, folder: Path) -> Placement:
        return Placement(
            run_file=folder / names.RUN_FILE_KEY,
            api_server=self.kube.connection.host,
            ca_file=folder / "ca.crt" if self.kube.connection.ca_file else None,
            token_file=folder / "token",
            journal=f"file:{folder / 'journal'}"
            if self.settings.local_journal == "file"
            else self.settings.local_journal,
        )

    def environment(self, launch: Launch, folder: Path) -> dict[str, str]:
        """The Pod's environment with local paths, the key's value, and what any process needs to start."""
        env = build_run_env(
            launch.run,
            launch.budget,
            self.placement(folder),
            otlp_endpoint=self.settings.otlp_endpoint,
            trace_parent=launch.trace_parent,
        ).to_env()
        env["AGENCY_RESULT_FILE"] = str(_result_file(folder, launch.attempt))
        env.update(signal_env(self.settings, folder / SIGNAL_TOKEN, folder / SIGNAL_CA))
        env.update(read_model_keys(self.kube, launch.agent))
        for name in PASS_THROUGH:
            if name in os.environ:
                env.setdefault(name, os.environ[name])
        return env

    def prepare(self, launch: Launch) -> Sequence[JsonDict]:
        """Nothing on the API server: the run file is written into the run's folder by `start`."""
        return ()

    def start(self, launch: Launch) -> None:
        """The run's process; None: `observe` reads where it is (its pid file, its result file)."""
        folder = self.folder(launch.body)
        if _pid_file(folder, launch.attempt).exists():
            return
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (folder / names.RUN_FILE_KEY).exists():  # a run's inputs never change, across attempts too
            _write_private(folder / names.RUN_FILE_KEY, run_file_text(launch.run_file))
        if self.kube.connection.ca_file:
            shutil.copyfile(self.kube.connection.ca_file, folder / "ca.crt")
        signals_ca = self.settings.signals_ca()
        if signals_ca is not None:
            _write_private(folder / SIGNAL_CA, signals_ca)
        meta = launch.body["metadata"]
        _write_private(
            folder / "token", request_token(self.kube, meta["namespace"], meta["name"], launch.policy)
        )
        self._write_signal_token(meta, folder, launch.policy)
        self.token_ttl[meta["uid"]] = launch.policy.spec.identity.token_expiration_seconds
        env = self.environment(launch, folder)
        pid_file = _pid_file(folder, launch.attempt)
        gated = ["/bin/sh", "-c", GATE, "agency-runtime", str(pid_file), *self.settings.runtime_command]
        with (folder / "runtime.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - the configured runtime command behind a fixed gate
                gated,
                env=env,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[meta["uid"]] = process
        _write_private(pid_file, str(process.pid))

    def _write_signal_token(self, meta: Mapping[str, Any], folder: Path, policy: AgentPolicy) -> None:
        """The second token, for the signal endpoint's audience, when runs may publish signals."""
        if self.settings.signals_url_for_runs() is None:
            return
        audience = self.settings.signals_audience
        token = request_token(self.kube, meta["namespace"], meta["name"], policy, audience)
        _write_private(folder / SIGNAL_TOKEN, token)

    def _renew_token(self, body: Mapping[str, Any], folder: Path) -> None:
        meta = body["metadata"]
        ttl = self.token_ttl.get(meta["uid"])
        token = folder / "token"
        if ttl is None or not token.exists() or time.time() - token.stat().st_mtime < ttl * TOKEN_RENEW_AT:
            return
        from agency_runtime.api.policy import AgentPolicySpec, Identity

        policy = AgentPolicy(spec=AgentPolicySpec(identity=Identity(token_expiration_seconds=ttl)))
        _write_private(token, request_token(self.kube, meta["namespace"], meta["name"], policy))
        self._write_signal_token(meta, folder, policy)

    def observe(self, body: Mapping[str, Any]) -> Observation:
        folder = self.folder(body)
        attempt = _latest_attempt(folder)
        if attempt is None:
            return Observation(Progress.ABSENT)
        pid_file = _pid_file(folder, attempt)
        started = datetime.fromtimestamp(pid_file.stat().st_mtime, UTC).replace(microsecond=0)
        result_file = _result_file(folder, attempt)
        process = self.processes.get(body["metadata"]["uid"])
        exit_code = process.poll() if process is not None else None
        running = exit_code is None and (
            process is not None or process_running(int(pid_file.read_text() or "0"))
        )
        if running:
            self._renew_token(body, folder)
            return Observation(Progress.RUNNING, started_at=started, attempt=attempt)
        result = parse_result(result_file.read_text(encoding="utf-8")) if result_file.exists() else None
        detail = "" if result else f"the runtime process ended without a result; see {folder / 'runtime.log'}"
        return Observation(
            Progress.FINISHED,
            started_at=started,
            exit_code=exit_code,
            result=result,
            detail=detail,
            attempt=attempt,
        )

    def stop(self, body: Mapping[str, Any]) -> None:
        """The run was deleted: stop its process (its whole process group) if it runs, remove its files."""
        uid = body["metadata"]["uid"]
        process = self.processes.pop(uid, None)
        pid = process.pid if process is not None else None
        folder = self.folder(body)
        attempt = _latest_attempt(folder)
        if pid is None and attempt is not None and not _result_file(folder, attempt).exists():
            pid = int(_pid_file(folder, attempt).read_text() or "0")
        if pid and (process.poll() is None if process is not None else process_running(pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)

    def sweep(self) -> int:
        """Stop and remove what is left of runs deleted while no operator ran: a folder whose run (by
        namespace, name and uid) no longer exists, in the namespaces this operator watches. Returns how
        many were removed."""
        removed = 0
        watched = set(self.settings.namespaces)
        if not self.settings.local_workdir.is_dir():
            return 0
        for namespace_folder in sorted(self.settings.local_workdir.iterdir()):
            if not namespace_folder.is_dir() or (watched and namespace_folder.name not in watched):
                continue
            for folder in sorted(namespace_folder.iterdir()):
                parsed = _run_of(folder)
                if parsed is None:
                    continue
                name, uid = parsed
                run = self.kube.get_or_none(path_for(API_VERSION, "agentruns", namespace_folder.name, name))
                if run is not None and run["metadata"]["uid"] == uid:
                    continue
                self.stop({"metadata": {"namespace": namespace_folder.name, "name": name, "uid": uid}})
                removed += 1
        return removed


_UID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _run_of(folder: Path) -> tuple[str, str] | None:
    """(name, uid) of a run's folder, `{name}-{uid}`; None for anything else found in the workdir."""
    name, uid = folder.name[:-37], folder.name[-36:]
    if not folder.is_dir() or not name or folder.name[-37:-36] != "-" or not _UID.match(uid):
        return None
    return name, uid
