"""The CloudEvents 1.0 endpoint that starts AgentRuns from signals: parsing, access checks, matching.

See `app` for the HTTP surface and `kube` for the Kubernetes access it needs.
"""
