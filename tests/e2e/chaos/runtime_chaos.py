"""One run of the real runtime, SIGKILLed at chosen points of its progress and restarted until it is done.

A kill point is a step and a phase of it:

- `model`: the model request of the step is in flight (the scripted model holds its answer);
- `recorded`: just after the model's answer was journaled (the read that follows is held, so the process
  is somewhere between the journal write and the read's response when it dies);
- `read`: the step's GET is in flight (held by the endpoint);
- `write`: the step's POST is in flight: the endpoint applies it only after the process died, so the
  response is lost and the next process must retry it with the same idempotency key.

Every point is reached by observing progress (the model's requests, the endpoint's, the journal), never by
sleeping, so each kill lands where it was meant to.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agency_runtime.journal import Kind, Record
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import JsonDict, Reply, call, reply
from agency_testbed.procs import wait_until
from e2e.runtime.runtime_process import RunSetup, RuntimeProcess
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import agent, http_tool

PHASES = ("model", "recorded", "read", "write")
REACH_TIMEOUT = 120.0


@dataclass(frozen=True, order=True)
class KillPoint:
    step: int
    phase_index: int

    @property
    def phase(self) -> str:
        return PHASES[self.phase_index]

    def __str__(self) -> str:
        return f"step {self.step} {self.phase}"


def kill_points(rng: random.Random, steps: int, kills: int) -> list[KillPoint]:
    """`kills` distinct points, in the order a run reaches them: every phase of the steps that call tools,
    the model request of the last step (which only answers)."""
    every = [KillPoint(s, p) for s in range(1, steps) for p in range(len(PHASES))]
    every.append(KillPoint(steps, 0))
    return sorted(rng.sample(every, kills))


def read_path(step: int) -> str:
    return f"/read/{step}"


def write_path(step: int) -> str:
    return f"/write/{step}"


def journal_records(path: Path) -> list[Record]:
    """The records of a file journal, read without opening it (opening takes an epoch); a torn last line
    of a killed writer is skipped, as the next process does."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(Record.from_json(json.loads(line)))
        except ValueError:
            continue
    return records


@dataclass
class Outcome:
    """What one run left behind, counted."""

    completed: bool = False
    kills: int = 0
    steps_lost: int = 0
    repeated_calls: int = 0
    duplicate_side_effects: int = 0
    problems: list[str] = field(default_factory=list)


class KilledRun:
    """Drives one run through its kill points; `outcome()` checks what it left."""

    def __init__(
        self, index: int, llm: ScriptedLLM, endpoint: CountingEndpoint, root: Path, steps: int
    ) -> None:
        self.index = index
        self.llm = llm
        self.endpoint = endpoint
        self.steps = steps
        self.conversation = f"chaos-runtime-{index}"
        self.setup = RunSetup(root, run_uid=f"0c7d8a52-c4a0-4e1f-9a00-{index:012d}")
        self.answer = f"run {index}: {steps - 1} reads and writes done"
        self.asks: Counter[int] = Counter()
        self.killed_at: list[KillPoint] = []
        self.processes: list[RuntimeProcess] = []
        self.result: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._armed: KillPoint | None = None
        self._reached = threading.Event()
        self._release = threading.Event()
        llm.script(self.conversation, [self._reply], repeat_last=True)
        tools = [http_tool("127.0.0.1"), http_tool("127.0.0.1", name="post", risk="idempotent")]
        self.setup.write(agent(llm.base_url, self.conversation, tools=tools), "read and write every step")

    @property
    def journal(self) -> Path:
        return self.setup.journal_root / self.setup.run_uid / "journal.jsonl"

    # --- the scripted model --------------------------------------------------------------------------------

    def _reply(self, body: JsonDict) -> Reply:
        step = 1 + sum(m["role"] == "assistant" for m in body["messages"])
        with self._lock:
            self.asks[step] += 1
            held = self._armed == KillPoint(step, PHASES.index("model"))
            release = self._release
        if held:
            self._reached.set()
            release.wait(REACH_TIMEOUT)
        if step >= self.steps:
            return reply(self.answer, usage=(100, 10))
        url = self.endpoint.url
        return reply(
            tool_calls=[
                call("http_request", {"method": "GET", "url": url + read_path(step)}),
                call("post", {"method": "POST", "url": url + write_path(step), "body": {"step": step}}),
            ],
            usage=(10 * step, step),
        )

    # --- driving -------------------------------------------------------------------------------------------

    def drive(self, points: list[KillPoint]) -> None:
        """Start, kill at each point, restart; the last process runs to the end."""
        try:
            for point in points:
                process = self._start(point)
                self._wait_reached(point, process)
                process.kill()
                self.killed_at.append(point)
                self._disarm()
            process = self._start(None)
            self.result = process.result(timeout=REACH_TIMEOUT)
        finally:
            self._disarm()
            for process in self.processes:
                process.stop()

    def _start(self, point: KillPoint | None) -> RuntimeProcess:
        with self._lock:
            self._armed = point
            self._reached = threading.Event()
            self._release = threading.Event()
        if point is not None and point.phase in ("recorded", "read"):
            self.endpoint.hold_requests("GET", read_path(point.step))
        elif point is not None and point.phase == "write":
            self.endpoint.hold_requests("POST", write_path(point.step))
        logs = self.setup.root / "logs" / str(len(self.processes))
        process = RuntimeProcess(self.setup.env(), logs)
        self.processes.append(process)
        return process

    def _seen(self, method: str, path: str) -> int:
        return sum(1 for r in self.endpoint.requests if (r.method, r.path) == (method, path))

    def _wait_reached(self, point: KillPoint, process: RuntimeProcess) -> None:
        if point.phase == "model":
            reached = self._reached.is_set
        elif point.phase == "recorded":
            key = f"step-{point.step}/model"

            def reached() -> bool:
                return any(r.kind is Kind.RESULT and r.key == key for r in journal_records(self.journal))
        else:
            held = (
                ("GET", read_path(point.step)) if point.phase == "read" else ("POST", write_path(point.step))
            )
            method, path = held
            before = self._seen(method, path)

            def reached() -> bool:
                return self._seen(method, path) > before

        def reached_or_exited() -> bool:
            if reached():
                return True
            if process.proc.poll() is not None:
                raise AssertionError(
                    f"run {self.index}: the process exited ({process.proc.returncode}) before {point}:\n"
                    + process.stderr()
                )
            return False

        wait_until(reached_or_exited, REACH_TIMEOUT, f"run {self.index} to reach {point}")

    def _disarm(self) -> None:
        with self._lock:
            self._armed = None
            self._release.set()
        self.endpoint.release()

    # --- checking ------------------------------------------------------------------------------------------

    def outcome(self) -> Outcome:
        out = Outcome(kills=len(self.killed_at))
        result = self.result or {}
        out.completed = result.get("phase") == "Succeeded"
        if (result.get("result"), result.get("steps")) != (self.answer, self.steps):
            out.steps_lost += 1
            out.problems.append(f"run {self.index}: result {result}")
        records = journal_records(self.journal)
        expected = [f"step-{s}/model" for s in range(1, self.steps + 1)]
        expected += [f"step-{s}/tool-{i}" for s in range(1, self.steps) for i in (0, 1)]
        results = Counter(r.key for r in records if r.kind is Kind.RESULT)
        for key in expected:
            if results[key] != 1:
                out.steps_lost += 1
                out.problems.append(f"run {self.index}: {results[key]} results of {key} in the journal")
        done_at = {r.key: r.seq for r in records if r.kind is Kind.RESULT}
        for record in records:
            if record.kind is Kind.INTENT and record.seq > done_at.get(record.key, record.seq):
                out.repeated_calls += 1
                out.problems.append(f"run {self.index}: {record.key} was started again after its result")
        model_kills = Counter(p.step for p in self.killed_at if p.phase == "model")
        for step in range(1, self.steps + 1):
            again = self.asks[step] - 1 - model_kills[step]
            if again:
                out.repeated_calls += abs(again)
                out.problems.append(
                    f"run {self.index}: the model was asked {self.asks[step]} times for step {step} "
                    f"({model_kills[step]} kill(s) while it was asked)"
                )
        effects = Counter(effect.split()[1] for effect in self.endpoint.effects)
        for step in range(1, self.steps):
            applied = effects[write_path(step)]
            out.duplicate_side_effects += max(0, applied - 1)
            if applied == 0:
                out.steps_lost += 1
            if applied != 1:
                out.problems.append(f"run {self.index}: POST {write_path(step)} applied {applied} times")
        keys = {r.idempotency_key for r in self.endpoint.requests if r.method == "POST"}
        if len(keys) != self.steps - 1:
            out.problems.append(
                f"run {self.index}: POSTs carried {len(keys)} idempotency keys {sorted(keys)}"
            )
        return out
