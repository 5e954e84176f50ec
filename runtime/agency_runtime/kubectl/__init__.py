"""`kubectl agency`: run agents, decide on their proposals, read their logs, traces and spending.

A kubectl plugin (kubectl finds `kubectl-agency` on PATH). It talks to the API server itself, over httpx,
with the credentials of the current kubeconfig context, and imports nothing heavy so that it starts fast:
no model client, no operator, not even the pydantic API models (it reads objects as plain JSON).
"""
