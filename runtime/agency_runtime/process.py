"""The runtime process: from the environment contract to a reported result.

`python -m agency_runtime` (started by the operator, or by `agency run`) reads `RunEnv` from its
environment, the run file, opens the run's journal, runs (or continues) the loop, and reports the result.
Exit codes: 0 when a result was reported (whatever the phase), 2 when the environment or run file is
wrong, 3 when a newer process took over the run (fenced), 143 when stopped by SIGTERM (the journal and
the spans so far are kept; a new process continues the run), 1 on an unexpected error.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from agency_runtime.api.agent import MemoryScope
from agency_runtime.api.policy import AgentPolicySpec, ContentCapture
from agency_runtime.approvals import load_decisions
from agency_runtime.contract import (
    JUDGE_API_KEY,
    MODEL_API_KEY,
    Budget,
    ContractError,
    RunEnv,
    fallback_api_keys,
)
from agency_runtime.journal import Fenced, Journal, JournalCorrupt
from agency_runtime.journal_file import file_journal_for
from agency_runtime.journal_kube import UNAVAILABLE_SECONDS, kube_journal_for
from agency_runtime.judge import settings_of
from agency_runtime.kube import KubeApiError, KubeClient, client_for, run_object
from agency_runtime.llm import ModelClient
from agency_runtime.loop import RunContext, run_agent
from agency_runtime.report import RESULT_FILE, FileReporter, Reporters, StatusReporter, StreamReporter
from agency_runtime.runfile import RunFile, RunFileError, load_run_file
from agency_runtime.status_kube import KubeStatusReporter
from agency_runtime.tools.memory import FileMemory, MemoryStore
from agency_runtime.tools.registry import build_registry
from agency_runtime.tools.signal import SignalEndpoint
from agency_runtime.tracing import Telemetry, TraceSettings

log = logging.getLogger("agency_runtime")

EXIT_OK, EXIT_ERROR, EXIT_CONTRACT, EXIT_FENCED, EXIT_TERMINATED = 0, 1, 2, 3, 143


class Terminated(BaseException):
    """SIGTERM arrived (the pod is being deleted): stop, flush, and leave the rest to a new process."""


def journal_hint(err: KubeApiError | JournalCorrupt) -> str:
    """What to look at when the journal cannot be kept: the cause the error names, not always RBAC."""
    if isinstance(err, JournalCorrupt):
        return "The journal's stored data is damaged; the runtime stops rather than guess which steps ran."
    if err.status in (401, 403):
        return "A Kubernetes journal needs the run's Role to allow agency_runtime.journal_kube.journal_rules."
    if err.status == 0 or err.status >= 500 or err.status == 429:
        return (
            f"The API server did not answer (retried for {UNAVAILABLE_SECONDS:.0f} s); the run's next "
            "process resumes from the last step the journal kept."
        )
    return "The API server refused the journal's request."


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


MEMORY_DIR = "AGENCY_MEMORY_DIR"
CONSOLE_TRACES = "AGENCY_TRACE_CONSOLE"


KUBE_JOURNAL = "kubernetes"
POD_STATE = Path("/tmp/agency")  # noqa: S108 - a pod's own writable scratch folder, not shared


def journal_for(env: RunEnv, kube: KubeClient | None = None) -> tuple[Journal, Path]:
    """The journal backend named by AGENCY_JOURNAL (`file:<dir>`, or `kubernetes`: ConfigMaps the run owns)
    and the folder for local state (memory files) that goes with it."""
    if env.journal.startswith("file:"):
        root = Path(env.journal.removeprefix("file:"))
        return file_journal_for(root, env.run_uid), root
    if env.journal == KUBE_JOURNAL:
        if kube is None:
            raise ContractError(
                "AGENCY_JOURNAL=kubernetes needs the run's API access: AGENCY_KUBE_API (https://...) and "
                "AGENCY_KUBE_TOKEN_FILE"
            )
        return kube_journal_for(kube, run_object(env)), POD_STATE
    raise ContractError(f"AGENCY_JOURNAL={env.journal!r}: use kubernetes or file:<dir>")


def memory_for(
    run: RunFile, env: RunEnv, environ: Mapping[str, str], journal_root: Path
) -> MemoryStore | None:
    """The agent's notes, per run or per agent (scope): files under AGENCY_MEMORY_DIR or the journal root."""
    scope = run.agent.memory.scope
    if scope is MemoryScope.DISABLED:
        return None
    root = Path(environ.get(MEMORY_DIR) or journal_root / "memory")
    name = (
        f"{env.agent_name}.json" if scope is MemoryScope.AGENT else f"{env.agent_name}.run-{env.run_uid}.json"
    )
    return FileMemory(root / env.namespace / name, max_entries=run.agent.memory.max_entries)


def policy_budget(policy: AgentPolicySpec | None) -> Budget:
    """The policy's per-run limits (the operator passes the tighter of these and the run's own)."""
    if policy is None:
        return Budget()
    per_run = policy.budgets.per_run
    return Budget(per_run.max_tokens, per_run.max_cost_usd, per_run.max_steps, per_run.max_wall_seconds)


def content_capture(policy: AgentPolicySpec | None) -> bool:
    """Prompts, replies and tool arguments go into traces only when the policy says so."""
    return policy is not None and policy.tracing.content_capture is ContentCapture.ENABLED


def reporter_for(
    environ: Mapping[str, str], client: KubeClient | None = None, env: RunEnv | None = None
) -> StatusReporter:
    """The result line on stdout, a result file if asked for, and live status when the run has a token."""
    reporters: list[StatusReporter] = [StreamReporter()]
    if environ.get(RESULT_FILE):
        reporters.append(FileReporter(Path(environ[RESULT_FILE])))
    if client is not None and env is not None:
        reporters.append(KubeStatusReporter(client, run_object(env)))
    return Reporters(*reporters)


def run_process(environ: Mapping[str, str], reporter: StatusReporter | None = None) -> int:
    """Run the run the environment describes; returns the process exit code."""
    try:
        env = RunEnv.from_env(environ)
        run = load_run_file(env.run_file)
        kube = client_for(env)
        journal, root = journal_for(env, kube)
    except (ContractError, RunFileError) as err:
        print(f"agency-runtime: {err}", file=sys.stderr)
        return EXIT_CONTRACT
    telemetry = Telemetry(
        TraceSettings(
            otlp_endpoint=env.otlp_endpoint,
            console=environ.get(CONSOLE_TRACES, "") in {"1", "true", "True"},
            capture_content=content_capture(run.policy),
        )
    )
    memory = memory_for(run, env, environ, root)
    reporter = reporter or reporter_for(environ, kube, env)
    ctx = RunContext(
        run_id=env.run_uid,
        agent_name=env.agent_name,
        run=run,
        budget=env.budget.tighten(policy_budget(run.policy)),
        journal=journal,
        model=ModelClient(
            run.agent.model,
            environ.get(MODEL_API_KEY) or None,
            fallback_api_keys(
                [f.credentials_secret_ref is not None for f in run.agent.model.fallbacks], environ
            ),
        ),
        tools=build_registry(
            run.agent,
            run.policy,
            memory,
            kube=kube,
            namespace=env.namespace,
            run=run_object(env) if kube is not None else None,
            signals=SignalEndpoint.from_environ(environ),
            agent_name=env.agent_name,
        ),
        telemetry=telemetry,
        memory=memory,
        traceparent=env.traceparent,
        on_progress=reporter.progress,
        judge=settings_of(run.agent, environ.get(JUDGE_API_KEY) or None),
        approvals=load_decisions(kube, run_object(env)) if kube is not None else {},
    )
    try:
        try:
            result = run_agent(ctx)
        except Fenced as err:
            print(f"agency-runtime: fenced: {err}", file=sys.stderr)
            return EXIT_FENCED
        except (KubeApiError, JournalCorrupt) as err:
            print(
                f"agency-runtime: the run's journal cannot be kept ({env.journal}): {err}. "
                + journal_hint(err),
                file=sys.stderr,
            )
            return EXIT_ERROR
        except Terminated:
            print(
                "agency-runtime: terminated by SIGTERM; the journal keeps the run for the next process",
                file=sys.stderr,
            )
            return EXIT_TERMINATED
        finally:
            journal.close()
            telemetry.shutdown()
        reporter.report(result)
        return EXIT_OK
    finally:
        if kube is not None:
            kube.close()


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(
        level=os.environ.get("AGENCY_LOG_LEVEL", "WARNING"), format="%(asctime)s %(name)s %(message)s"
    )
    return run_process(os.environ)
