"""`kubectl agency run` without an operator: --no-follow returns at once, --timeout stops following."""

from __future__ import annotations

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import agent, apply
from integration.kubectl.kubectl_plugin import Plugin, agent_run


def test_no_follow_prints_the_created_name_and_budget_flags_reach_the_run(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, agent(namespace))

    limits = ("--max-tokens", "5000", "--max-steps", "4")
    created = plugin("run", "helper", "--input", "Sort the mail.", *limits, "--no-follow", "-n", namespace)

    assert created.returncode == 0, created.stderr
    name = created.stdout.strip()
    assert name.startswith("helper-")
    spec = agent_run(testbed, namespace, name)["spec"]
    assert (spec["input"], spec["budget"]) == ("Sort the mail.", {"maxTokens": 5000, "maxSteps": 4})


def test_following_a_run_nobody_starts_stops_at_the_timeout_with_exit_4(
    plugin: Plugin, kubectl: Kubectl, namespace: str
) -> None:
    apply(kubectl, agent(namespace))

    waited = plugin("run", "helper", "--input", "x", "--name", "idle", "--timeout", "1", "-n", namespace)

    assert waited.returncode == 4
    assert waited.stderr.splitlines()[-1] == (
        "error: AgentRun idle is still Pending after 1s; it goes on running "
        f"(kubectl get agentrun idle -n {namespace})"
    )
