"""Agency's Kubernetes operator: reconciles Agents, AgentPolicies, AgentSchedules and AgentRuns."""

__version__ = "0.1.0"
