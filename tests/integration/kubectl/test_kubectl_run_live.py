"""`kubectl agency run` against the real operator: a run created from the command line, followed to its
end; then its trace link and its log, as a user would ask for them next."""

from __future__ import annotations

import json
import re

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    STUB_ENV,
    OperatorFactory,
    agent,
    apply,
    policy,
    secret,
    wait_for_phase,
)
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import reply
from integration.kubectl.kubectl_plugin import ADMIN, Plugin, agent_run

MODEL = "openai/gpt-4o-mini"  # a model litellm prices offline, so the run has a cost
CREATED = re.compile(r"^agentrun\.agency\.dev/(\S+) created in namespace (\S+)$", re.M)


def test_run_creates_the_run_with_the_input_follows_it_to_succeeded_then_shows_trace_and_log(
    operator: OperatorFactory,
    plugin: Plugin,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.script("gpt-4o-mini", [reply("All 12 reefers are within range.", usage=(1200, 40))])
    the_agent = agent(namespace, model=MODEL)
    the_agent["spec"]["model"]["apiBase"] = scripted_llm.base_url
    apply(kubectl, secret(namespace), policy(namespace), the_agent)
    operator.start(executor="local", env={"AGENCY_LOCAL_JOURNAL": "kubernetes"})

    done = plugin("run", "helper", "--input", "Check the reefers.", "-n", namespace, "--timeout", "150")

    assert done.returncode == 0, done.stderr
    assert done.stdout == "All 12 reefers are within range.\n"
    created = CREATED.search(done.stderr)
    assert created is not None, done.stderr
    name = created.group(1)
    assert (name.startswith("helper-"), created.group(2)) == (True, namespace)
    progress = [line for line in done.stderr.splitlines() if "  step " in line]
    assert progress[-1].startswith("Succeeded  step 1  tokens 1,240 (1,200 in / 40 out)  cost $0.0")
    assert len(progress) == len(set(progress)), "each state is printed once"
    run = agent_run(testbed, namespace, name)
    assert (run["spec"]["input"], run["spec"]["agentRef"]["name"]) == ("Check the reefers.", "helper")

    trace = plugin("trace", name, "-n", namespace, "--url", "http://127.0.0.1:16686")
    trace_id = run["status"]["traceId"]
    assert trace.returncode == 0, trace.stderr
    assert trace.stdout.splitlines() == [trace_id, f"http://127.0.0.1:16686/trace/{trace_id}"]

    where = f"/{namespace}/{name}-{run['metadata']['uid']}/runtime.log"
    elsewhere = plugin(
        "logs", name, "-n", namespace, env={"AGENCY_LOCAL_WORKDIR": "/nonexistent/agency-runs"}
    )
    assert elsewhere.returncode == 2
    assert "has no Pod: it runs with the local executor" in elsewhere.stderr
    assert f"/nonexistent/agency-runs{where}" in elsewhere.stderr
    here = plugin("logs", name, "-n", namespace, env={"AGENCY_LOCAL_WORKDIR": str(operator.workdir)})
    assert here.returncode == 0, here.stderr
    assert here.stdout == (operator.workdir / where.lstrip("/")).read_text()
    assert "All 12 reefers are within range." in here.stdout
    followed = plugin(
        "logs", "-f", name, "-n", namespace, env={"AGENCY_LOCAL_WORKDIR": str(operator.workdir)}
    )
    assert (followed.returncode, followed.stdout) == (0, here.stdout), "a finished run's log ends the follow"


def test_run_waiting_for_approval_exits_3_naming_the_proposal_and_approve_lets_it_finish(
    operator: OperatorFactory, plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    ask = {
        "phase": "WaitingForApproval",
        "proposal": {"proposalId": "p1"},
        "afterApproval": {"phase": "Succeeded", "result": "dispatched", "steps": 2},
    }
    apply(kubectl, secret(namespace), policy(namespace), agent(namespace))
    operator.start(executor="local", env=STUB_ENV)

    waiting = plugin("run", "helper", "--name", "r1", "--input", json.dumps(ask), "-n", namespace)

    assert waiting.returncode == 3, waiting.stderr
    assert "AgentRun r1 waits for approval" in waiting.stderr
    assert "p1" in waiting.stderr
    assert f"kubectl agency approve r1 --proposal ID -n {namespace}" in waiting.stderr

    approved = plugin("approve", "r1", "--proposal", "p1", "--reason", "planned", "-n", namespace)

    assert approved.returncode == 0, approved.stderr
    assert approved.stdout == f"Approved proposal p1 of AgentRun r1 in namespace {namespace} as {ADMIN}\n"
    (decision,) = agent_run(testbed, namespace, "r1")["spec"]["approvals"]
    assert (decision["proposalId"], decision["decision"], decision["by"], decision["reason"]) == (
        "p1",
        "Approved",
        ADMIN,
        "planned",
    )
    assert wait_for_phase(testbed, namespace, "r1", "Succeeded")["result"] == "dispatched"
