"""A proposal nobody decides on within the policy's timeoutSeconds counts as rejected."""

from __future__ import annotations

import time

from agency_runtime.api.common import RunPhase
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Runner, agent, http_tool, policy, tool_messages


def test_a_proposal_past_its_timeout_is_not_made_and_the_model_is_told_it_expired(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "expire",
        [
            reply(tool_calls=[call("http_request", {"method": "DELETE", "url": f"{endpoint.url}/db"})]),
            reply("gave up on it"),
        ],
    )
    spec = agent(scripted_llm.base_url, "expire", tools=[http_tool("127.0.0.1")])
    port = int(endpoint.url.rsplit(":", 1)[1])
    governed = policy(
        network={"egress": [{"hosts": ["127.0.0.1"], "ports": [{"port": port}]}]},
        approvals={"timeoutSeconds": 60},
    )
    started = time.time()

    first = runner.run(spec, policy=governed, clock=lambda: started)
    within = runner.run(spec, policy=governed, clock=lambda: started + 59)
    expired = runner.run(spec, policy=governed, clock=lambda: started + 61)

    assert (first.phase, within.phase) == (RunPhase.WAITING_FOR_APPROVAL, RunPhase.WAITING_FOR_APPROVAL)
    assert (expired.phase, expired.result) == (RunPhase.SUCCEEDED, "gave up on it")
    assert endpoint.requests == []
    assert tool_messages(scripted_llm.requests("expire")[1]) == [
        "not executed: the proposal expired after 60 seconds without a decision, so it counts as rejected. "
        "Do not call it again; find another way or explain."
    ]
