"""Cron syntax as AgentSchedule accepts it: one regular expression for the API server, croniter for the rest.

The expression is written without backslashes or quotes so that it embeds unchanged in a CEL string and
reads the same in RE2 (the API server) and Python's `re` (the tests and the operator). croniter loads and
`re` compiles the expression (and keeps it in its cache) on the first check: the runtime imports this
module with the API models and never checks a schedule.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MACROS = ("yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly")

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DAYS = "sun|mon|tue|wed|thu|fri|sat"
_STEP = "[1-9][0-9]?"


def _field(numbers: str, names: str | None = None) -> str:
    """A list of `*`, values or ranges, each with an optional `/step`."""
    value = f"(?:{numbers}|(?i:{names}))" if names else f"(?:{numbers})"
    item = f"(?:[*]|{value}(?:-{value})?)(?:/{_STEP})?"
    return f"{item}(?:,{item})*"


_FIELDS = (
    _field("[0-5]?[0-9]"),  # minute
    _field("[01]?[0-9]|2[0-3]"),  # hour
    _field("0?[1-9]|[12][0-9]|3[01]"),  # day of month
    _field("0?[1-9]|1[0-2]", _MONTHS),  # month
    _field("[0-7]", _DAYS),  # day of week
)

CRON_PATTERN = "^(?:@(?:" + "|".join(MACROS) + ")|" + "[ ]+".join(_FIELDS) + ")$"


def cron_errors(expression: str, *, now: datetime | None = None) -> list[str]:
    """Why a cron expression cannot drive a schedule; empty when it can.

    Besides the syntax the API server checks, this catches expressions that never fire (`0 0 31 2 *`).
    """
    from croniter import CroniterBadDateError, CroniterError, croniter

    if not re.match(CRON_PATTERN, expression):
        return [
            f"{expression!r} is not a five-field cron expression "
            "(minute hour day-of-month month day-of-week) or a macro such as @hourly"
        ]
    start = now or datetime.now(UTC)
    try:
        croniter(expression, start).get_next(datetime)
    except CroniterBadDateError:
        return [f"{expression!r} never fires"]
    except (CroniterError, ValueError, KeyError) as error:
        return [f"{expression!r} is not a valid cron expression: {error}"]
    return []
