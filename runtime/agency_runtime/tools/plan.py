"""Tools that change only the run itself: its living plan (`update_plan`) and its end (`finish`).

The plan ("rollout memory") is what the model intends to do next; it is shown in the system prompt of
every step and kept in the journal (the tool's outcome carries it), so a resumed run has it back.
"""

from __future__ import annotations

from agency_runtime.api.common import Risk
from agency_runtime.tools.base import JsonDict, Tool, ToolContext, ToolError, ToolOutcome

MAX_PLAN_CHARS = 8_000


class UpdatePlanTool(Tool):
    name = "update_plan"
    description = (
        "Write down or revise your plan: the steps ahead, what is done, what you learned. It is shown to "
        "you at every step; keep it short."
    )

    @property
    def parameters(self) -> JsonDict:
        return {
            "type": "object",
            "properties": {
                "plan": {"type": "string", "description": "The whole plan, replacing the old one."}
            },
            "required": ["plan"],
            "additionalProperties": False,
        }

    internal = True

    def risk(self, arguments: JsonDict) -> Risk:
        return Risk.READ_ONLY

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        plan = str(arguments["plan"]).strip()
        if len(plan) > MAX_PLAN_CHARS:
            raise ToolError(
                f"the plan may hold at most {MAX_PLAN_CHARS} characters, this one has {len(plan)}"
            )
        return ToolOutcome("plan updated", data={"plan": plan})


class FinishTool(Tool):
    name = "finish"
    description = "End the task with its final result. (Answering without calling a tool also ends it.)"

    @property
    def parameters(self) -> JsonDict:
        return {
            "type": "object",
            "properties": {"result": {"type": "string", "description": "The final answer for the user."}},
            "required": ["result"],
            "additionalProperties": False,
        }

    internal = True

    def risk(self, arguments: JsonDict) -> Risk:
        return Risk.READ_ONLY

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        return ToolOutcome(str(arguments["result"]), final=True)
