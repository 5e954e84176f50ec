"""`agency run -f agent.yaml --input "..."`: one agent, run locally, no cluster.

Builds the run file from the YAML (an Agent object or a bare AgentSpec; likewise the policy), keeps the
journal in a directory (default `~/.local/state/agency/runs`), and runs the same process code the operator
starts. `--run-id` of an earlier run continues it from its journal. Traces go to OTLP with `--otlp URL`,
to the console with `--console-traces`.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agency_runtime.api.agent import Agent, AgentSpec
from agency_runtime.api.policy import AgentPolicy, AgentPolicySpec
from agency_runtime.contract import Budget, RunEnv
from agency_runtime.runfile import RunFile, write_run_file

DEFAULT_STATE = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "agency"


class CliError(Exception):
    """A problem with the command line or its files, said for the person typing."""


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise CliError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected a YAML mapping (an Agent or its spec)")
    return data


def load_agent(path: Path) -> tuple[str, AgentSpec]:
    """The agent's name and spec from a file holding an Agent object or a bare spec."""
    data = _load_yaml(path)
    try:
        if "kind" in data:
            agent = Agent.from_k8s(data)
            return agent.metadata.name or path.stem, agent.spec
        return path.stem, AgentSpec.model_validate(data)
    except ValidationError as err:
        raise CliError(f"{path} is not a valid Agent:\n{err}") from None


def load_policy(path: Path) -> AgentPolicySpec:
    data = _load_yaml(path)
    try:
        return AgentPolicy.from_k8s(data).spec if "kind" in data else AgentPolicySpec.model_validate(data)
    except ValidationError as err:
        raise CliError(f"{path} is not a valid AgentPolicy:\n{err}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agency", description="Agency: run AI agents as governed workloads."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one agent locally, without a cluster")
    run.add_argument("-f", "--file", type=Path, required=True, help="the Agent YAML (an Agent or its spec)")
    run.add_argument("--input", default="", help="the task for the agent")
    run.add_argument("--policy", type=Path, help="an AgentPolicy YAML; without it every tool acts")
    run.add_argument("--journal", type=Path, help=f"journal directory (default {DEFAULT_STATE / 'runs'})")
    run.add_argument("--run-id", help="continue this earlier run from its journal")
    run.add_argument("--otlp", help="send traces to this OTLP/HTTP endpoint (e.g. http://localhost:4318)")
    run.add_argument("--console-traces", action="store_true", help="print spans to stderr")
    run.add_argument("--max-tokens", type=int)
    run.add_argument("--max-cost-usd", type=float)
    run.add_argument("--max-steps", type=int)
    run.add_argument("--max-wall-seconds", type=int)
    return parser


def run_command(args: argparse.Namespace) -> int:
    from agency_runtime.process import policy_budget, run_process

    name, spec = load_agent(args.file)
    policy = load_policy(args.policy) if args.policy else None
    journal = (args.journal or DEFAULT_STATE / "runs").resolve()
    run_id = args.run_id or f"local-{uuid.uuid4().hex[:12]}"
    run_dir = journal / "runfiles"
    run_dir.mkdir(parents=True, exist_ok=True)
    run_file = run_dir / f"{run_id}.json"
    if not args.run_id or not run_file.exists():
        write_run_file(RunFile(agent=spec, policy=policy, input=args.input), run_file)
    budget = policy_budget(policy).tighten(
        Budget(args.max_tokens, args.max_cost_usd, args.max_steps, args.max_wall_seconds)
    )
    env = RunEnv(
        run_name=run_id,
        namespace="local",
        run_uid=run_id,
        agent_name=name,
        run_file=run_file,
        api_server="local",
        journal=f"file:{journal}",
        budget=budget,
        otlp_endpoint=args.otlp or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
        traceparent=os.environ.get("TRACEPARENT") or None,
    ).to_env()
    if args.console_traces:
        env["AGENCY_TRACE_CONSOLE"] = "1"
    environ = {**os.environ, **env}
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    print(f"agency: run {run_id} (journal {journal / run_id})", file=sys.stderr)
    return run_process(environ)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from agency_runtime.llm import prewarm_litellm

            prewarm_litellm()
            return run_command(args)
    except CliError as err:
        print(f"agency: {err}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
