"""The budget meter: the runtime's own enforcement of a run's token, cost, step and wall-time limits.

litellm's `max_budget` does not count chat calls, so the runtime counts for itself: before each model
call it estimates what the call can cost at most (prompt tokens plus the output tokens it allows) and
refuses to start a call that could cross a limit; after each call it records what was actually used.
A run stopped this way ends `BudgetExceeded` with the usage of every call made so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agency_runtime.contract import Budget

#: A call that may return fewer output tokens than this is not worth starting.
MIN_OUTPUT_TOKENS = 16


class BudgetExceeded(Exception):
    """A limit stops the run; `limit` is the axis (tokens, cost, steps, wall), the message says how."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message


@dataclass(frozen=True)
class Usage:
    """What the run's model calls used so far."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def plus(self, input_tokens: int, output_tokens: int, cost_usd: float) -> Usage:
        return Usage(
            self.input_tokens + input_tokens, self.output_tokens + output_tokens, self.cost_usd + cost_usd
        )

    def to_json(self) -> dict[str, int | float]:
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.total_tokens,
            "costUSD": round(self.cost_usd, 10),
        }


@dataclass(frozen=True)
class Prices:
    """US dollars per token, input and output; zero when the model's price is unknown."""

    input_per_token: float = 0.0
    output_per_token: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token


@dataclass(frozen=True)
class CallAllowance:
    """What the next model call may use: the output token cap to request (None: provider default)."""

    max_output_tokens: int | None
    estimated_input_tokens: int


class Meter:
    """Counts usage, steps and time against a budget. `started_at` is wall-clock (epoch) seconds, so a
    resumed run keeps counting from its first start, not from the new process's."""

    def __init__(
        self,
        budget: Budget,
        started_at: float,
        *,
        usage: Usage | None = None,
        steps: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budget = budget
        self.started_at = started_at
        self.usage = usage or Usage()
        self.steps = steps
        self._clock = clock

    # --- time ---------------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return max(0.0, self._clock() - self.started_at)

    def remaining_wall(self) -> float | None:
        """Seconds left before the wall-time limit, None when there is none."""
        if self.budget.max_wall_seconds is None:
            return None
        return self.budget.max_wall_seconds - self.elapsed()

    def deadline(self) -> float | None:
        """The wall-clock (epoch) second the run must end by."""
        if self.budget.max_wall_seconds is None:
            return None
        return self.started_at + self.budget.max_wall_seconds

    def check_wall(self) -> None:
        left = self.remaining_wall()
        if left is not None and left <= 0:
            raise BudgetExceeded(
                "wall",
                f"wall-time limit of {self.budget.max_wall_seconds}s reached after {self.elapsed():.1f}s",
            )

    # --- steps and calls ----------------------------------------------------------------------------------

    def check_step(self) -> None:
        """Refuse to start another step when the step limit is reached."""
        limit = self.budget.max_steps
        if limit is not None and self.steps >= limit:
            raise BudgetExceeded(
                "steps", f"step limit of {limit} reached: the model did not finish within {limit} steps"
            )

    def allow_call(
        self, estimated_input_tokens: int, configured_max_output: int | None, prices: Prices
    ) -> CallAllowance:
        """What the next call may use, or BudgetExceeded if even a small reply could cross a limit.

        The output cap is the configured one, lowered so that prompt plus output fits what is left of
        the token and cost limits; a call whose cap would fall below MIN_OUTPUT_TOKENS is not started.
        """
        self.check_wall()
        self.check_step()
        cap = configured_max_output
        if self.budget.max_tokens is not None:
            left = self.budget.max_tokens - self.usage.total_tokens - estimated_input_tokens
            if left < MIN_OUTPUT_TOKENS:
                raise BudgetExceeded(
                    "tokens",
                    f"token limit of {self.budget.max_tokens} would be crossed: "
                    f"{self.usage.total_tokens} used, the next call needs about "
                    f"{estimated_input_tokens} prompt tokens plus its reply",
                )
            cap = left if cap is None else min(cap, left)
        if self.budget.max_cost_usd is not None and (prices.input_per_token or prices.output_per_token):
            left_usd = self.budget.max_cost_usd - self.usage.cost_usd - prices.cost(estimated_input_tokens, 0)
            affordable = int(left_usd / prices.output_per_token) if prices.output_per_token else None
            if left_usd <= 0 or (affordable is not None and affordable < MIN_OUTPUT_TOKENS):
                raise BudgetExceeded(
                    "cost",
                    f"cost limit of ${self.budget.max_cost_usd} would be crossed: "
                    f"${self.usage.cost_usd:.6f} spent, the next call costs about "
                    f"${prices.cost(estimated_input_tokens, MIN_OUTPUT_TOKENS):.6f} or more",
                )
            if affordable is not None:
                cap = affordable if cap is None else min(cap, affordable)
        elif self.budget.max_cost_usd is not None and self.usage.cost_usd >= self.budget.max_cost_usd:
            raise BudgetExceeded(
                "cost", f"cost limit of ${self.budget.max_cost_usd} reached: ${self.usage.cost_usd:.6f} spent"
            )
        return CallAllowance(max_output_tokens=cap, estimated_input_tokens=estimated_input_tokens)

    def remaining(self) -> Budget:
        """What is left of each limit now (None: unlimited; never below zero): the most a delegated child
        run may be given."""
        tokens, cost, wall = self.budget.max_tokens, self.budget.max_cost_usd, self.remaining_wall()
        return Budget(
            max_tokens=None if tokens is None else max(0, tokens - self.usage.total_tokens),
            max_cost_usd=None if cost is None else max(0.0, cost - self.usage.cost_usd),
            max_steps=None,
            max_wall_seconds=None if wall is None else max(0, int(wall)),
        )

    def charge(self, usage: Usage) -> None:
        """Count what someone else used on this run's behalf (a delegated child run); not a step."""
        self.usage = self.usage.plus(usage.input_tokens, usage.output_tokens, usage.cost_usd)

    def record_call(self, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        """Count one finished model call (one step)."""
        self.usage = self.usage.plus(input_tokens, output_tokens, cost_usd)
        self.steps += 1
