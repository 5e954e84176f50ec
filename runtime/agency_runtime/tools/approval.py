"""`request_approval`: the model asks a human, in words, to approve something before it goes on.

Unlike a gated tool call this is a proposal whatever the policy's autonomy (it is the approval): the loop
holds the run WaitingForApproval and, once an approver decided, gives the model the decision as the tool's
result (`approved by <who>: <why>` or `rejected by <who>: <why>`; an expired request counts as rejected).
The policy's allowed and denied tool lists still apply.
"""

from __future__ import annotations

from agency_runtime.api.common import Risk
from agency_runtime.tools.base import JsonDict, Tool, ToolContext, ToolError, ToolOutcome

MAX_SUMMARY_CHARS = 500
MAX_DETAILS_CHARS = 3_000
DESCRIPTION = (
    "Ask a human approver to approve something before you go on (a plan, a change, spending). The run "
    "waits for their decision; the result says who approved or rejected it and why. Only go ahead with "
    "what was approved."
)


class RequestApprovalTool(Tool):
    """Answered by the run's approvers through the loop, never invoked (see the module docstring)."""

    def __init__(self, name: str = "request_approval", description: str | None = None) -> None:
        self.name = name
        self.description = description or DESCRIPTION

    @property
    def parameters(self) -> JsonDict:
        return {
            "type": "object",
            "properties": {
                "summary": {
                    "type": "string",
                    "maxLength": MAX_SUMMARY_CHARS,
                    "description": "What you ask to be approved, in one sentence.",
                },
                "details": {
                    "type": "string",
                    "maxLength": MAX_DETAILS_CHARS,
                    "description": "What you will do if approved, and why; what the approver should check.",
                },
            },
            "required": ["summary"],
            "additionalProperties": False,
        }

    def risk(self, arguments: JsonDict) -> Risk:
        """Asking changes nothing; what is asked for is described in words for the approver to weigh."""
        return Risk.READ_ONLY

    def invoke(self, arguments: JsonDict, context: ToolContext) -> ToolOutcome:
        raise ToolError("request_approval is answered by the run's approvers, not called")
