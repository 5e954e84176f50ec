"""The one place the environment of a run is built, for a Pod and a local process alike.

Executors differ only in where files are (the run file, the token, the CA) and which API address the
process uses; everything else — identity of the run, budget, OpenTelemetry settings, trace parent —
comes from here, through `RunEnv.to_env()` of the runtime's contract.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from agency_operator import names
from agency_operator.settings import Settings
from agency_runtime.api.run import AgentRun
from agency_runtime.contract import Budget, RunEnv

#: Where a run publishes signals and the token it sends there (audience: the signal endpoint's), as the
#: runtime's publish_signal tool reads them.
SIGNAL_URL = "AGENCY_SIGNAL_URL"
SIGNAL_TOKEN_FILE = "AGENCY_SIGNAL_TOKEN_FILE"  # noqa: S105 - the name of a variable, not a token
SIGNAL_CA_FILE = "AGENCY_SIGNAL_CA_FILE"
#: The signal token's and the endpoint CA's file names, beside the run's own token.
SIGNAL_TOKEN = "signal-token"  # noqa: S105 - a file name
SIGNAL_CA = names.SIGNALS_CA_KEY

TRACEPARENT_PATTERN = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclass(frozen=True)
class Placement:
    """Where an executor puts a run's inputs, as the runtime process sees them."""

    run_file: Path
    api_server: str
    ca_file: Path | None
    token_file: Path | None
    journal: str


def traceparent(run: AgentRun, parent_trace_id: str | None) -> str | None:
    """The W3C trace parent of the run, so runs started by other runs join one trace.

    A delegating runtime may annotate the child with its exact span (`agency.dev/traceparent`); otherwise
    the child joins the parent run's trace under a fresh parent span id. A run with neither starts a trace.
    """
    annotated = run.metadata.annotations.get(names.TRACEPARENT_ANNOTATION, "")
    if TRACEPARENT_PATTERN.fullmatch(annotated):
        return annotated
    if parent_trace_id and re.fullmatch(r"[0-9a-f]{32}", parent_trace_id):
        return f"00-{parent_trace_id}-{secrets.token_hex(8)}-01"
    return None


def build_run_env(
    run: AgentRun,
    budget: Budget,
    placement: Placement,
    *,
    otlp_endpoint: str | None,
    trace_parent: str | None,
) -> RunEnv:
    """The contract object; `.to_env()` is exactly the process environment (the model key is added apart)."""
    return RunEnv(
        run_name=run.metadata.name,
        namespace=run.metadata.namespace or "",
        run_uid=run.metadata.uid or "",
        agent_name=run.spec.agent_ref.name,
        run_file=placement.run_file,
        api_server=placement.api_server,
        ca_file=placement.ca_file,
        token_file=placement.token_file,
        journal=placement.journal,
        budget=budget,
        otlp_endpoint=otlp_endpoint,
        traceparent=trace_parent,
    )


def signal_env(settings: Settings, token_file: Path, ca_file: Path) -> dict[str, str]:
    """The variables that let a run publish signals; none when runs have no endpoint to reach. The CA
    file (where the run finds `Settings.signals_ca`) only when the operator was given one."""
    url = settings.signals_url_for_runs()
    if url is None:
        return {}
    env = {SIGNAL_URL: url, SIGNAL_TOKEN_FILE: str(token_file)}
    if settings.signals_ca_file is not None:
        env[SIGNAL_CA_FILE] = str(ca_file)
    return env
