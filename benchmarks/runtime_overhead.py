"""Runtime overhead: the agent loop (journal, budget, gate, tracing) against a bare litellm tool loop.

Both loops run the same 20-step conversation against the same scripted model, calling the same local HTTP
endpoint once per step, in this process, interleaved so drift on a busy machine hits both alike. What
differs is what Agency adds per step: an fsync'd journal intent and result around every model and tool
call, the budget estimate, the policy gate and the GenAI spans. Second table: process start to the first
model request, `python -m agency_runtime` against a bare `python -c` that imports litellm and calls it.

Targets (issue "Prove it"): per-step overhead <= 10% at 20 steps; start to first request <= 2 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx

from agency_runtime.api.agent import AgentSpec
from agency_runtime.api.policy import AgentPolicySpec
from agency_runtime.contract import Budget, RunEnv
from agency_runtime.journal_file import FileJournal
from agency_runtime.llm import ModelClient
from agency_runtime.loop import RunContext, run_agent
from agency_runtime.runfile import RunFile, write_run_file
from agency_runtime.tools.memory import FileMemory
from agency_runtime.tools.registry import build_registry
from agency_runtime.tracing import Telemetry, TraceSettings
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import Reply, call, delay, reply

STEPS = 20
ROUNDS = 5
STARTS = 5


class _Endpoint(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        body = b'{"celsius": 5.4}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _script(url: str) -> list[Reply]:
    turns = [reply(tool_calls=[call("http_request", {"method": "GET", "url": url})], usage=(400, 30))] * STEPS
    return [*turns, reply("done", usage=(400, 5))]


def _agent(base_url: str, conversation: str, host: str) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "instructions": "Read the sensor until told to stop.",
            "model": {"name": f"openai/{conversation}", "apiBase": base_url},
            "tools": [{"name": "http_request", "builtin": "http", "settings": {"allowedHosts": host}}],
        }
    )


def _policy() -> AgentPolicySpec:
    return AgentPolicySpec.model_validate({"autonomy": {"readOnly": {"level": "act"}}})


def bare_loop(base_url: str, conversation: str, url: str) -> float:
    """The least a tool-calling loop can do: call, run the tool, append, repeat."""
    import litellm

    tool = {
        "type": "function",
        "function": {
            "name": "http_request",
            "parameters": {
                "type": "object",
                "properties": {"method": {"type": "string"}, "url": {"type": "string"}},
            },
        },
    }
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Read the sensor until told to stop."}]
    started = time.perf_counter()
    with httpx.Client(timeout=10) as http:
        while True:
            answer = litellm.completion(
                model=f"openai/{conversation}",
                api_base=base_url,
                api_key="bench",
                messages=messages,
                tools=[tool],
                num_retries=0,
            )
            message = answer.choices[0].message
            if not message.tool_calls:
                break
            messages.append(message.model_dump())
            for tool_call in message.tool_calls:
                arguments = json.loads(tool_call.function.arguments)
                result = http.request(arguments["method"], arguments["url"]).text
                messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": result})
    return time.perf_counter() - started


def agency_loop(base_url: str, conversation: str, host: str, root: Path) -> float:
    spec = _agent(base_url, conversation, host)
    policy = _policy()
    memory = FileMemory(root / "memory.json")
    ctx = RunContext(
        run_id=conversation,
        agent_name="bench",
        run=RunFile(agent=spec, policy=policy, input="Read the sensor until told to stop."),
        budget=Budget(max_steps=STEPS + 5),
        journal=FileJournal(root / "journal" / conversation),
        model=ModelClient(spec.model, "bench"),
        tools=build_registry(spec, policy, memory),
        telemetry=Telemetry(TraceSettings(capture_content=False)),
        memory=memory,
    )
    started = time.perf_counter()
    try:
        result = run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()
    elapsed = time.perf_counter() - started
    if result.phase.value != "Succeeded" or result.steps < STEPS:
        raise RuntimeError(f"the agency loop did not finish the script: {result.phase} {result.message}")
    return elapsed


@dataclass(frozen=True)
class Start:
    """One process start: wall time to its first model request, and the CPU time it had used by then."""

    wall: float
    cpu: float


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_latency(llm: ScriptedLLM, argv: list[str], env: dict[str, str], conversation: str) -> Start:
    """Start a process and time its first model request. The scripted model holds its answer, so the process
    is waiting on it while its CPU time is read; then the process is killed (the run needs no end)."""
    llm.script(conversation, [delay(30, reply("done", usage=(10, 1)))], repeat_last=True)
    llm_records_before = len(llm.recorded(conversation))
    spawned = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        llm.wait_for_requests(conversation, llm_records_before + 1, timeout=60)
        cpu = _cpu_seconds(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    return Start(llm.recorded(conversation)[llm_records_before].received - spawned, cpu)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


PART = "AGENCY_BENCH_PART"
"""`steps` or `startup` runs only that table; unset runs both."""
STARTS_VARIABLE = "AGENCY_BENCH_STARTS"
HTTP_HANDLER = "EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER"
"""litellm's switch from the OpenAI SDK's client to its own HTTP handler, which the runtime sets."""
BYTECODE = "AGENCY_BENCH_BYTECODE"
"""`source`: time the starts without a bytecode cache (the default reads compiled bytecode, as the image)."""


def step_overhead(llm: ScriptedLLM, root: Path, url: str) -> float:
    """Per-step time of both loops, interleaved; prints the table and returns the ratio agency/bare."""
    bare: list[float] = []
    ours: list[float] = []
    # The runtime sends OpenAI-compatible calls through litellm's own HTTP handler (`load_litellm`); the
    # bare loop takes the same path, so that the ratio is the loop's cost and not two HTTP clients'.
    with patch.dict(os.environ, {HTTP_HANDLER: "true"}):
        bare_loop_warm = "warm-bare"
        llm.script(bare_loop_warm, _script(url))
        bare_loop(llm.base_url, bare_loop_warm, url)  # imports litellm and warms its first call
        for round_ in range(ROUNDS):
            for kind in ("bare", "agency") if round_ % 2 == 0 else ("agency", "bare"):
                conversation = f"{kind}-{round_}"
                llm.script(conversation, _script(url))
                if kind == "bare":
                    bare.append(bare_loop(llm.base_url, conversation, url) / STEPS)
                else:
                    ours.append(agency_loop(llm.base_url, conversation, "127.0.0.1", root) / STEPS)
    ours_ms = [s * 1000 for s in ours]
    bare_ms = [s * 1000 for s in bare]
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"per-step time over {STEPS} steps, {ROUNDS} rounds each (ms)")
    print(f"  {'loop':<28} {'median':>8} {'p90':>8}")
    for label, values in (("bare litellm tool loop", bare_ms), ("agency loop", ours_ms)):
        print(f"  {label:<28} {statistics.median(values):>8.2f} {_percentile(values, 90):>8.2f}")
    print(f"  ratio agency/bare (median): {ratio:.2f}  (target <= 1.10)", flush=True)
    return ratio


def _bytecode_env(env: dict[str, str], cache: Path, compiled: bool) -> dict[str, str]:
    """`env` with Python's bytecode cache in `cache`: written and read (as the image, which ships compiled
    bytecode), or neither (every start compiles every module from source)."""
    env = {**env, "PYTHONPYCACHEPREFIX": str(cache)}
    if compiled:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def startup(llm: ScriptedLLM, root: Path, starts: int = STARTS, compiled: bool = True) -> tuple[float, float]:
    """Process start to first model request, agency and bare interleaved; prints the table and returns
    the medians (agency, bare) in seconds, bare on the same HTTP path as the runtime.

    Two bare processes: litellm as it comes (its OpenAI calls through the OpenAI SDK's client, whose first
    use imports all of `openai.resources`), and litellm with its own HTTP handler, as the runtime sets it
    (`load_litellm`). The ratio is against the second: what Agency adds to the fastest bare start.

    Both processes get the same bytecode cache, a fresh folder: with `compiled` one untimed start of each
    fills it first, so the timed starts read compiled bytecode as the image does (UV_COMPILE_BYTECODE);
    without, it stays empty and every start compiles from source."""
    spec = _agent(llm.base_url, "start-agency", "127.0.0.1")
    run_file = root / "start" / "run.json"
    run_file.parent.mkdir(parents=True)
    write_run_file(RunFile(agent=spec, policy=None, input="hello"), run_file)
    cache = root / "pycache"
    base_env = _bytecode_env(
        {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != HTTP_HANDLER},
        cache,
        compiled,
    )
    handler_env = {**base_env, HTTP_HANDLER: "true"}
    bare_code = (
        f"import litellm; litellm.completion(model='openai/start-bare', api_base={llm.base_url!r}, "
        "api_key='x', messages=[{'role': 'user', 'content': 'hello'}], num_retries=0)"
    )
    bare_argv = [sys.executable, "-c", bare_code]
    ours_argv = [sys.executable, "-m", "agency_runtime"]

    def ours_env(name: str) -> dict[str, str]:
        contract = RunEnv(
            run_name=name,
            namespace="bench",
            run_uid=f"uid-{name}",
            agent_name="bench",
            run_file=run_file,
            api_server="https://127.0.0.1:1",
            journal=f"file:{root / 'start' / name}",
        ).to_env()
        return {**base_env, **contract, "AGENCY_MODEL_API_KEY": "bench"}

    if compiled:
        start_latency(llm, bare_argv, base_env, "start-bare")
        start_latency(llm, ours_argv, ours_env("warm"), "start-agency")
    starts_ours: list[Start] = []
    starts_sdk: list[Start] = []
    starts_bare: list[Start] = []
    for i in range(starts):
        order = ["sdk", "bare", "ours"]
        for kind in order if i % 2 == 0 else order[::-1]:
            if kind == "sdk":
                starts_sdk.append(start_latency(llm, bare_argv, base_env, "start-bare"))
            elif kind == "bare":
                starts_bare.append(start_latency(llm, bare_argv, handler_env, "start-bare"))
            else:
                starts_ours.append(start_latency(llm, ours_argv, ours_env(str(i)), "start-agency"))
    ours, bare = (
        statistics.median(s.wall for s in starts_ours),
        statistics.median(s.wall for s in starts_bare),
    )
    bytecode = "compiled bytecode, as in the image" if compiled else "no bytecode cache: compiled from source"
    print(f"process start to first model request, {starts} starts each, {bytecode} (s)")
    print(f"  {'process':<28} {'median':>8} {'max':>8} {'cpu median':>11}")
    for label, values in (
        ("python -c (litellm, SDK)", starts_sdk),
        ("python -c (litellm, handler)", starts_bare),
        ("python -m agency_runtime", starts_ours),
    ):
        walls = [s.wall for s in values]
        cpu = statistics.median(s.cpu for s in values)
        print(f"  {label:<28} {statistics.median(walls):>8.2f} {max(walls):>8.2f} {cpu:>11.2f}")
    print(f"  ratio agency/bare with its handler (median): {ours / bare:.2f}  (target: agency <= 2.0 s)")
    print(
        "  cpu: CPU seconds the process had used when its request arrived; on a busy machine the wall time\n"
        "  is that stretched by the other work (the wall time of an idle machine is close to it).",
        flush=True,
    )
    return ours, bare


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    part = os.environ.get(PART, "")
    if part not in {"", "steps", "startup"}:
        raise SystemExit(f"{PART}={part!r}: use steps or startup (or leave it unset for both)")
    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{endpoint.server_address[1]}/reading"
    summary: list[str] = []
    with ScriptedLLM() as llm, tempfile.TemporaryDirectory(prefix="agency-bench-") as tmp:
        root = Path(tmp)
        if part in {"", "steps"}:
            ratio = step_overhead(llm, root, url)
            summary.append(f"per-step overhead {100 * (ratio - 1):+.0f}% vs a bare litellm loop")
            print()
        if part in {"", "startup"}:
            starts = int(os.environ.get(STARTS_VARIABLE) or STARTS)
            ours, bare = startup(llm, root, starts, compiled=os.environ.get(BYTECODE) != "source")
            summary.append(f"start to first request {ours:.2f} s ({ours / bare:.2f}x a bare litellm process)")
    endpoint.shutdown()
    print(f"\nsummary: {'; '.join(summary)}")


if __name__ == "__main__":
    main()
