"""The tools a run's model can call, and the policy gate in front of them."""

from agency_runtime.tools.base import Tool, ToolContext, ToolError, ToolOutcome, parse_arguments
from agency_runtime.tools.gate import Decision, GateResult, decide
from agency_runtime.tools.registry import ToolRegistry, build_registry

__all__ = [
    "Decision",
    "GateResult",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "build_registry",
    "decide",
    "parse_arguments",
]
