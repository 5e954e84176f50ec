"""A received CloudEvent, reduced to what matching, templates and runs need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Signal:
    """One CloudEvent as the endpoint accepted it: the required attributes, the optional ones the
    significance test and templates use, and the data (parsed JSON, text, bytes or None)."""

    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime | None = None
    data: Any = None
    datacontenttype: str | None = None
    traceparent: str | None = None
    """The CloudEvents distributed-tracing extension (a W3C trace parent), when the sender set a valid one:
    the run this event starts joins the sender's trace."""

    def cel_variables(self) -> dict[str, Any]:
        """The variables a significance expression sees: data, type, source, subject, id and time.

        `time` is a CEL timestamp (compare with `timestamp("...")`) or null; `subject` is null when unset.
        """
        return {
            "data": self.data,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "id": self.id,
            "time": self.time.astimezone(UTC) if self.time else None,
        }

    def template_variables(self) -> dict[str, Any]:
        """The `signal` mapping of the input template (strings, and the data as it is)."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject or "",
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z") if self.time else "",
            "data": self.data,
        }
