"""Reflect and adapt: when a run ends, the model writes one short lesson for the agent's next runs.

A run that ends (succeeded, failed, stopped by its budget; not one that waits for approval, and not a
process that was fenced, which never gets here) asks the agent's model what it would do differently, and
stores the answer as the memory note `lesson-<run id>`. The loop puts every `lesson*` note into the
system prompt of the agent's later runs. Reflection runs only when the agent's memory scope is `Agent`:
with `Run` scope the note would die with the run.

Budget: reflection takes no reserve from the task. It runs only when what is left of the token, cost and
wall-time budget still allows a small call (the step limit does not count it); otherwise it is skipped,
the journal records why, and the result says so in `reflection`. A model failure skips it the same way:
reflection never changes how the run ended.

The call is journaled under `reflection/model` and the lesson under `reflection`, so a restarted process
stores the same lesson again (the write is idempotent) without asking the model twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agency_runtime.budget import BudgetExceeded, Prices
from agency_runtime.compaction import render
from agency_runtime.journal import Kind
from agency_runtime.llm import Message, ModelClient, ModelError
from agency_runtime.sidecall import SideCalls, step_span
from agency_runtime.tools.memory import LESSON_PREFIX, MemoryStore

KEY = "reflection"
MAX_LESSONS_SHOWN = 20
MAX_LESSON_CHARS = 600
MAX_LESSON_TOKENS = 200
MAX_TRANSCRIPT_CHARS = 12_000

INSTRUCTIONS = (
    "You review a finished run of an AI agent. Write ONE lesson for the agent's next runs of similar tasks: "
    "what to do again, or what to do differently, concretely (tools, order, checks). At most two "
    "sentences, no preamble. If there is nothing to learn, answer exactly: none"
)


@dataclass(frozen=True)
class Outcome:
    """How the run ended, in words the reflecting model (and the judge) read."""

    phase: str
    reason: str
    message: str
    result: str | None
    plan: str | None

    def describe(self) -> str:
        lines = [f"Outcome: {self.phase} ({self.reason}): {self.message}"]
        if self.result:
            lines.append(f"Final answer: {self.result}")
        if self.plan:
            lines.append(f"Last plan: {self.plan}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Reflection:
    """What reflection did: the lesson stored, or why there is none."""

    lesson: str | None
    note: str

    def to_json(self) -> dict[str, str]:
        out = {"note": self.note}
        if self.lesson is not None:
            out["lesson"] = self.lesson
        return out


def recent_lessons(memory: MemoryStore) -> list[str]:
    """The lessons a new run is told: the newest MAX_LESSONS_SHOWN, oldest first, so that a long-lived
    agent's system prompt does not grow by a lesson with every run."""
    return memory.lessons()[-MAX_LESSONS_SHOWN:]


def lesson_key(run_id: str) -> str:
    return f"{LESSON_PREFIX}-{run_id}"


def request(task: str, outcome: Outcome, messages: Sequence[Message]) -> list[Message]:
    transcript = render(messages[1:])
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        transcript = "[...]\n" + transcript[-MAX_TRANSCRIPT_CHARS:]
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {
            "role": "user",
            "content": f"The task:\n{task}\n\n{outcome.describe()}\n\n"
            f"What happened:\n{transcript or '(nothing)'}",
        },
    ]


def bounded(text: str | None) -> str | None:
    """The lesson as stored: one paragraph, at most MAX_LESSON_CHARS; None when the model had none."""
    lesson = " ".join((text or "").split())
    if not lesson or lesson.strip(" .").lower() == "none":
        return None
    if len(lesson) > MAX_LESSON_CHARS:
        lesson = lesson[: MAX_LESSON_CHARS - 1].rstrip() + "…"
    return lesson


def reflect(
    calls: SideCalls,
    client: ModelClient,
    prices: Prices,
    memory: MemoryStore,
    run_id: str,
    task: str,
    outcome: Outcome,
    messages: Sequence[Message],
) -> Reflection:
    """Ask for a lesson (or read it back from the journal) and store it in the agent's memory."""
    done = calls.replay.result(KEY)
    if done is not None:
        reflection = Reflection(done.get("lesson"), str(done.get("note", "")))
    else:
        with step_span(calls.telemetry, "reflection") as span:
            try:
                answer = calls.ask(
                    f"{KEY}/model",
                    client,
                    request(task, outcome, messages),
                    max_output_tokens=MAX_LESSON_TOKENS,
                    prices=prices,
                )
            except BudgetExceeded as exceeded:
                reflection = Reflection(None, f"skipped: the budget does not allow it ({exceeded.message})")
            except ModelError as err:
                reflection = Reflection(None, f"skipped: the model failed ({err})")
            else:
                lesson = bounded(answer.content)
                note = (
                    f"stored as memory note {lesson_key(run_id)!r}" if lesson else "the model had no lesson"
                )
                reflection = Reflection(lesson, note)
            span.set_attribute("agency.reflection.stored", reflection.lesson is not None)
        calls.journal.append(Kind.RESULT, KEY, reflection.to_json())
    if reflection.lesson is not None:
        memory.write(lesson_key(run_id), reflection.lesson)
    return reflection
