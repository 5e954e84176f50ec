"""`kubectl agency`: the command line. Parses flags as kubectl does, runs one command, and turns every
PluginError into one line on stderr and its exit code (see errors.py for the codes)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from agency_runtime.kubectl import decide, logs, usage
from agency_runtime.kubectl import run as runs
from agency_runtime.kubectl.client import Api, kind_path, run_path
from agency_runtime.kubectl.errors import EXIT_ERROR, PluginError
from agency_runtime.kubectl.kubeconfig import load
from agency_runtime.kubectl.progress import WAITING, ProgressLine, outcome, phase_of, waiting_message
from agency_runtime.kubectl.trace import trace_link

TRACE_URL_ENV = "AGENCY_TRACE_URL"


def _connection_flags(default: object) -> argparse.ArgumentParser:
    """The flags kubectl users pass anywhere on the line; `default` SUPPRESS on the commands, so a flag
    given before the command is not reset by the command's own default."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--kubeconfig", default=default, help="the kubeconfig file (default: KUBECONFIG, else ~/.kube/config)"
    )
    flags.add_argument("--context", default=default, help="the kubeconfig context (default: the current one)")
    flags.add_argument(
        "-n", "--namespace", default=default, help="the namespace (default: the context's namespace)"
    )
    return flags


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl agency",
        description="Run Agency agents, decide on their proposals, read their logs, traces and spending.",
        parents=[_connection_flags(None)],
    )
    flags = _connection_flags(argparse.SUPPRESS)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[flags], help="create an AgentRun and follow it to its end")
    run.add_argument("agent", metavar="AGENT")
    run.add_argument("--input", required=True, help="what the agent is asked to do")
    run.add_argument("--name", help="the run's name (default: generated from the agent's)")
    run.add_argument("--max-tokens", type=int, help="a lower token limit than the policy's, for this run")
    run.add_argument("--max-cost-usd", type=float, help="a lower cost limit (USD) than the policy's")
    run.add_argument("--max-steps", type=int, help="a lower step limit than the policy's")
    run.add_argument("--no-follow", action="store_true", help="create the run and return")
    run.add_argument("--timeout", type=float, help="stop following after this many seconds (exit 4)")

    for verb, word in (("approve", "Approved"), ("reject", "Rejected")):
        cmd = commands.add_parser(
            verb, parents=[flags], help=f"record a decision ({word}) on a run's proposal"
        )
        cmd.add_argument("run", metavar="RUN")
        cmd.add_argument("--proposal", help="the proposal id (default: the only one waiting)")
        cmd.add_argument("--reason", help="why, in a sentence; shown to the agent")
        cmd.set_defaults(decision=word)

    log = commands.add_parser("logs", parents=[flags], help="the runtime's log of a run")
    log.add_argument("run", metavar="RUN")
    log.add_argument("-f", "--follow", action="store_true", help="keep printing until the run stops")

    trace = commands.add_parser("trace", parents=[flags], help="a run's trace id and a link to it")
    trace.add_argument("run", metavar="RUN")
    trace.add_argument("--url", help=f"Jaeger or Grafana/Tempo base URL (default: ${TRACE_URL_ENV})")

    use = commands.add_parser("usage", parents=[flags], help="tokens and cost by namespace and agent")
    use.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    use.add_argument("--agent", help="only this agent's runs")
    return top


def _run(api: Api, ns: str, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    body = runs.build_run(
        args.agent,
        args.input,
        name=args.name,
        max_tokens=args.max_tokens,
        max_cost_usd=args.max_cost_usd,
        max_steps=args.max_steps,
    )
    created = runs.create(api, ns, body)
    name = created["metadata"]["name"]
    err.write(f"agentrun.agency.dev/{name} created in namespace {ns}\n")
    if args.no_follow:
        out.write(f"{name}\n")
        return 0
    final = runs.follow(api, ns, name, ProgressLine(err), timeout=args.timeout)
    if phase_of(final) == WAITING:
        err.write(waiting_message(final, ns) + "\n")
    elif phase_of(final) == "Succeeded":
        out.write(outcome(final) + "\n")
    else:
        err.write(outcome(final) + "\n")
    return runs.exit_code(final)


def _decide(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    entry = decide.decide(api, ns, args.run, args.decision, args.proposal, args.reason)
    out.write(
        f"{entry['decision']} proposal {entry['proposalId']} of AgentRun {args.run} in namespace {ns} "
        f"as {entry['by']}\n"
    )
    return 0


def _trace(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    run = api.get(run_path(ns, args.run), what=f"AgentRun {args.run}", namespace=ns)
    trace_id = (run.get("status") or {}).get("traceId")
    if not trace_id:
        raise PluginError(
            f"AgentRun {args.run} in namespace {ns} has no trace id yet (phase {phase_of(run)})"
        )
    out.write(f"{trace_id}\n")
    base = args.url or os.environ.get(TRACE_URL_ENV)
    if base:
        out.write(f"{trace_link(base, trace_id)}\n")
    return 0


def _usage(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    where = None if args.all_namespaces else ns
    body = api.call("GET", kind_path("agentruns", where), what="AgentRuns", namespace=where, action="list")
    items = body.get("items", [])
    rows = usage.summarize(items, args.agent)
    counted = [i for i in items if args.agent is None or i["spec"]["agentRef"]["name"] == args.agent]
    if rows:
        out.write(usage.table(rows) + "\n")
    out.write(usage.period(counted) + "\n")
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    try:
        conn = load(args.kubeconfig, context=args.context, namespace=args.namespace)
        with Api(conn) as api:
            ns = conn.namespace
            if args.command == "run":
                return _run(api, ns, args, out, err)
            if args.command in ("approve", "reject"):
                return _decide(api, ns, args, out)
            if args.command == "logs":
                logs.show(api, ns, args.run, out, follow=args.follow, env=os.environ)
                return 0
            if args.command == "trace":
                return _trace(api, ns, args, out)
            return _usage(api, ns, args, out)
    except PluginError as failure:
        err.write(f"error: {failure}\n")
        return failure.exit_code
    except KeyboardInterrupt:
        err.write("\ninterrupted (the run, if any, goes on in the cluster)\n")
        return EXIT_ERROR
