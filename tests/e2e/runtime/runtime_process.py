"""Start `python -m agency_runtime` as the operator does: a run file, the contract environment, a journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agency_runtime.api.agent import AgentSpec
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.contract import MODEL_API_KEY, Budget, RunEnv
from agency_runtime.runfile import RunFile, write_run_file

API_KEY = "sk-e2e-secret-key-do-not-log"


@dataclass
class RunSetup:
    """One run's files under `root`: the run file, the journal directory and the result file."""

    root: Path
    run_uid: str = "0c7d8a52-e2e0-4e1f-9a00-000000000001"
    agent_name: str = "e2e-agent"

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    @property
    def journal_root(self) -> Path:
        return self.root / "journal"

    def write(self, spec: AgentSpec, input: str, policy: AgentPolicySpec | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_run_file(RunFile(agent=spec, policy=policy, input=input), self.run_file)

    def env(
        self,
        *,
        budget: Budget | None = None,
        otlp: str | None = None,
        traceparent: str | None = None,
        result_file: Path | None = None,
        service: str | None = None,
    ) -> dict[str, str]:
        contract = RunEnv(
            run_name="e2e-run",
            namespace="e2e",
            run_uid=self.run_uid,
            agent_name=self.agent_name,
            run_file=self.run_file,
            api_server="https://127.0.0.1:1",
            journal=f"file:{self.journal_root}",
            budget=budget or Budget(),
            otlp_endpoint=otlp,
            traceparent=traceparent,
        ).to_env()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENCY_", "OTEL_", "TRACEPARENT"))}
        env.update(contract)
        env[MODEL_API_KEY] = API_KEY
        if result_file is not None:
            env["AGENCY_RESULT_FILE"] = str(result_file)
        if service is not None:
            env["OTEL_SERVICE_NAME"] = service
        return env


class RuntimeProcess:
    """One runtime process; stdout and stderr go to files next to the run."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agency_runtime"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush; what is in the journal is all that survives."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 120.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the runtime did not finish in {timeout}s:\n{self.stderr()}") from None

    def stderr(self) -> str:
        return (self.logs / "stderr").read_text(errors="replace")

    def stdout(self) -> str:
        return (self.logs / "stdout").read_text(errors="replace")

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for exit 0 and return the JSON result line it printed last."""
        code = self.wait(timeout)
        assert code == 0, f"runtime exited {code}:\n{self.stderr()}"
        lines = [line for line in self.stdout().splitlines() if line.strip()]
        assert lines, f"the runtime printed no result:\n{self.stderr()}"
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
