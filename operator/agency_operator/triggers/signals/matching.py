"""Whether an event concerns a signal trigger: type and source filters, the CEL significance test, and the
optional threshold of N significant events in T seconds.

CEL library: `common-expression-language` (module `cel`), Python bindings over the Rust
`cel-interpreter`. Chosen over `cel-python` (`celpy`) because it ships typed stubs (mypy --strict), compiles
an expression once into a reusable `Program`, reports syntax errors with the position, and evaluates in
native code rather than through a Python tree walker; it has wheels for Python 3.11 on this platform.

Expressions see `data`, `type`, `source`, `subject`, `id` and `time` (see `Signal.cel_variables`), and must
evaluate to a boolean. An expression that does not compile, fails while evaluating (a field the event
lacks, a division by zero) or returns something else raises `SignificanceError`, which the endpoint
reports for that schedule while the other schedules still get the event. Use `has(data.field)` to test
for optional fields.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cel

from agency_operator.triggers.signals.event import Signal
from agency_runtime.api.schedule import SignalTrigger, Threshold

#: Compiled expressions kept; schedules are few, and an evicted expression just compiles again.
_CACHE_SIZE = 1024


class SignificanceError(Exception):
    """A significance expression that cannot decide: it does not compile, fails or is not boolean."""


def pattern_matches(pattern: str | None, value: str) -> bool:
    """`pattern` is an exact value, or a prefix when it ends with `*`; None matches everything."""
    if pattern is None:
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def trigger_matches(trigger: SignalTrigger, signal: Signal) -> bool:
    """The trigger's type and source filters accept the event."""
    return pattern_matches(trigger.type, signal.type) and pattern_matches(trigger.source, signal.source)


@lru_cache(maxsize=_CACHE_SIZE)
def _compiled(expression: str) -> cel.Program | SignificanceError:
    """Compile once per distinct expression; a compile error is cached too, as the error to raise."""
    try:
        return cel.compile(expression)
    except Exception as error:  # the bindings raise ValueError, but a Rust panic surfaces as others
        return SignificanceError(f"significance expression does not compile: {error}")


def significance_errors(expression: str) -> list[str]:
    """Why an expression cannot be a significance test; empty when it compiles. For schedule conditions."""
    program = _compiled(expression)
    return [str(program)] if isinstance(program, SignificanceError) else []


def is_significant(expression: str | None, signal: Signal) -> bool:
    """Evaluate the trigger's significance expression over the event; no expression means significant."""
    if expression is None:
        return True
    program = _compiled(expression)
    if isinstance(program, SignificanceError):
        raise program
    try:
        result: Any = program.execute(signal.cel_variables())
    except Exception as error:  # evaluation errors come as KeyError, ValueError, ZeroDivisionError, ...
        detail = f"no such key {error}" if isinstance(error, KeyError) else str(error)
        raise SignificanceError(f"significance expression failed on event {signal.id!r}: {detail}") from error
    if not isinstance(result, bool):
        raise SignificanceError(
            f"significance expression must be true or false, it gave {type(result).__name__} {result!r}"
        )
    return result


@dataclass
class _Window:
    seen: deque[tuple[float, str]] = field(default_factory=deque)


class ThresholdWindows:
    """Sliding windows of significant events, one per (namespace, schedule, trigger).

    Kept in memory of one operator replica: with several replicas serving the endpoint, each counts the
    events it received, and a restart forgets the counts. Redeliveries of one event (same source and id)
    count once. When a window reaches its count the trigger fires and the window starts empty again,
    so N more events are needed for the next run.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def record(
        self, key: tuple[str, str, str], signal: Signal, threshold: Threshold | None, now: float
    ) -> tuple[bool, int]:
        """Count the event at time `now` (seconds); True when the trigger fires, and the count in window."""
        if threshold is None:
            return True, 1
        event = f"{signal.source}\x00{signal.id}"
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= self._max_keys:
                    self._windows.pop(next(iter(self._windows)))  # oldest key; bounds memory
                window = self._windows[key] = _Window()
            horizon = now - threshold.window_seconds
            while window.seen and window.seen[0][0] <= horizon:
                window.seen.popleft()
            if all(seen != event for _, seen in window.seen):
                window.seen.append((now, event))
            count = len(window.seen)
            if count >= threshold.count:
                window.seen.clear()
                return True, count
            return False, count
