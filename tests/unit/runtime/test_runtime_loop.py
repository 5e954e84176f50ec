"""The loop, run in this process against the scripted LLM and a real HTTP endpoint, over a file journal."""

from __future__ import annotations

from agency_runtime.api.common import RunPhase
from agency_runtime.journal import Kind
from agency_runtime.loop import Progress, run_agent
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, error, reply
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Runner, act_on_everything, agent, http_tool, policy, tool_messages


def test_agent_uses_tools_over_several_steps_and_returns_the_models_answer(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "multi",
        [
            reply(
                tool_calls=[call("update_plan", {"plan": "1. read stock\n2. order more"})], usage=(100, 10)
            ),
            reply(tool_calls=[call("http_request", {"url": f"{endpoint.url}/stock"})], usage=(200, 20)),
            reply(
                tool_calls=[
                    call(
                        "http_request", {"method": "POST", "url": f"{endpoint.url}/orders", "body": {"n": 3}}
                    )
                ],
                usage=(300, 30),
            ),
            reply("Ordered 3 more.", usage=(400, 40)),
        ],
    )
    spec = agent(scripted_llm.base_url, "multi", tools=[http_tool("127.0.0.1")])

    result = runner.run(spec, input="keep the stock up")

    assert result.phase is RunPhase.SUCCEEDED
    assert result.result == "Ordered 3 more."
    assert result.steps == 4
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1000, 100)
    assert result.plan == "1. read stock\n2. order more"
    assert [(r.method, r.path) for r in endpoint.requests] == [("GET", "/stock"), ("POST", "/orders")]
    assert endpoint.effects == ['POST /orders {"n": 3}']
    requests = scripted_llm.requests("multi")
    assert requests[0]["messages"][1] == {"role": "user", "content": "keep the stock up"}
    assert "1. read stock" in requests[1]["messages"][0]["content"], (
        "the revised plan is in the system prompt"
    )
    assert tool_messages(requests[2])[-1].startswith("HTTP 200")
    assert '"path": "/orders"' in tool_messages(requests[3])[-1]
    assert {t["function"]["name"] for t in requests[0]["tools"]} >= {"http_request", "update_plan", "finish"}


def test_the_finish_tool_ends_the_run_with_its_result(scripted_llm: ScriptedLLM, runner: Runner) -> None:
    scripted_llm.script("fin", [reply(tool_calls=[call("finish", {"result": "all good"})])])

    result = runner.run(agent(scripted_llm.base_url, "fin"))

    assert (result.phase, result.result, result.steps) == (RunPhase.SUCCEEDED, "all good", 1)


def test_a_tool_the_policy_denies_is_refused_and_the_model_is_told_why(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "denied",
        [
            reply(tool_calls=[call("http_request", {"url": f"{endpoint.url}/x"})]),
            reply("I could not reach it."),
        ],
    )
    spec = agent(scripted_llm.base_url, "denied", tools=[http_tool("127.0.0.1")])

    result = runner.run(spec, policy=act_on_everything(tools={"denied": ["http_*"]}))

    assert result.phase is RunPhase.SUCCEEDED
    assert endpoint.requests == []
    told = tool_messages(scripted_llm.requests("denied")[1])[0]
    assert "refused" in told
    assert "denies tool 'http_request'" in told
    assert "'http_*'" in told


def test_a_tool_the_policy_does_not_allow_is_refused_naming_the_allowed_list(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "notallowed", [reply(tool_calls=[call("http_request", {"url": f"{endpoint.url}/x"})]), reply("ok")]
    )
    spec = agent(scripted_llm.base_url, "notallowed", tools=[http_tool("127.0.0.1")])

    runner.run(spec, policy=act_on_everything(tools={"allowed": ["kubectl_*"]}))

    told = tool_messages(scripted_llm.requests("notallowed")[1])[0]
    assert "does not allow tool 'http_request'" in told
    assert "kubectl_*" in told
    assert endpoint.requests == []


def test_a_host_outside_the_allow_list_is_not_called_and_the_model_is_told(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "host", [reply(tool_calls=[call("http_request", {"url": f"{endpoint.url}/x"})]), reply("ok")]
    )
    spec = agent(scripted_llm.base_url, "host", tools=[http_tool("api.example.com")])

    runner.run(spec)

    assert endpoint.requests == []
    assert "not in this tool's allowedHosts" in tool_messages(scripted_llm.requests("host")[1])[0]


def test_malformed_tool_json_and_an_unknown_tool_get_corrective_messages_and_the_run_still_ends(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script(
        "sloppy",
        [
            reply(tool_calls=[call("update_plan", '{"plan": "unterminated')]),
            reply(tool_calls=[call("launch_rockets", {"count": 3})]),
            reply(tool_calls=[call("update_plan", {"wrong": 1})]),
            reply("Done, carefully this time."),
        ],
    )

    result = runner.run(agent(scripted_llm.base_url, "sloppy"))

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "Done, carefully this time.")
    requests = scripted_llm.requests("sloppy")
    assert "not valid JSON" in tool_messages(requests[1])[0]
    assert "no tool named 'launch_rockets'" in tool_messages(requests[2])[1]
    assert "update_plan" in tool_messages(requests[2])[1], "the model is told which tools exist"
    assert "missing required argument(s): plan" in tool_messages(requests[3])[2]


def test_rate_limited_model_is_retried_after_its_retry_after_and_the_run_succeeds(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("busy", [error(429, retry_after=0.3), error(503), reply("finally", usage=(10, 2))])

    result = runner.run(agent(scripted_llm.base_url, "busy"))

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "finally")
    assert len(scripted_llm.requests("busy")) == 3
    assert runner.sleep.waits[0] == 0.3, "Retry-After is honoured"
    assert 0.5 <= runner.sleep.waits[1] <= 1.0, "then exponential backoff (0.5 s doubling) with jitter"
    answer = next(r for r in runner.journal_records() if r.kind is Kind.RESULT and r.key == "step-1/model")
    assert answer.data["attempts"] == 3


def test_a_retry_that_would_outlast_the_wall_time_limit_ends_the_run_instead_of_waiting(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    from agency_runtime.contract import Budget

    scripted_llm.script(
        "slowdown",
        [reply(tool_calls=[call("update_plan", {"plan": "p"})], usage=(10, 1)), error(429, retry_after=60)],
    )

    result = runner.run(agent(scripted_llm.base_url, "slowdown"), budget=Budget(max_wall_seconds=20))

    assert result.phase is RunPhase.BUDGET_EXCEEDED
    assert result.limit == "wall"
    assert runner.sleep.waits == []
    assert (result.usage.input_tokens, result.usage.output_tokens, result.steps) == (10, 1, 1)


def test_notify_autonomy_reports_the_call_without_making_it(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "notify",
        [
            reply(tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/restart"})]),
            reply("Asked for a restart."),
        ],
    )
    spec = agent(scripted_llm.base_url, "notify", tools=[http_tool("127.0.0.1")])
    governed = policy(
        autonomy={"destructive": {"level": "notify"}},
        network={
            "egress": [{"hosts": ["127.0.0.1"], "ports": [{"port": int(endpoint.url.rsplit(":", 1)[1])}]}]
        },
    )

    result = runner.run(spec, policy=governed)

    assert result.phase is RunPhase.SUCCEEDED
    assert endpoint.requests == []
    assert [n["tool"] for n in result.notifications] == ["http_request"]
    assert "not executed" in tool_messages(scripted_llm.requests("notify")[1])[0]


def test_propose_autonomy_holds_the_run_waiting_for_approval_and_a_restart_keeps_waiting(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "propose",
        [reply(tool_calls=[call("http_request", {"method": "DELETE", "url": f"{endpoint.url}/db"})])],
    )
    spec = agent(scripted_llm.base_url, "propose", tools=[http_tool("127.0.0.1")])
    port = int(endpoint.url.rsplit(":", 1)[1])
    governed = policy(network={"egress": [{"hosts": ["127.0.0.1"], "ports": [{"port": port}]}]})

    first = runner.run(spec, policy=governed)
    second = runner.run(spec, policy=governed)

    assert first.phase is RunPhase.WAITING_FOR_APPROVAL
    assert first.proposal is not None
    assert first.proposal["tool"] == "http_request"
    assert first.proposal["risk"] == "destructive"
    assert "propose" in first.message
    assert second.phase is RunPhase.WAITING_FOR_APPROVAL
    assert second.proposal == first.proposal
    assert endpoint.requests == []
    assert len(scripted_llm.requests("propose")) == 1, "the restarted process did not ask the model again"
    proposals = [r for r in runner.journal_records() if r.kind is Kind.PROPOSAL]
    assert len(proposals) == 1


def test_lessons_in_memory_are_in_the_system_prompt_and_notes_persist(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script(
        "memo",
        [
            reply(tool_calls=[call("memory_write", {"key": "lesson-1", "value": "check the freezer first"})]),
            reply("ok"),
            reply("none"),  # the reflection at the end of the run
        ],
    )
    scripted_llm.script("memo2", [reply("ok again"), reply("none")])

    runner.run(agent(scripted_llm.base_url, "memo", memory={"scope": "Agent"}), run_id="first")
    runner.run(agent(scripted_llm.base_url, "memo2", memory={"scope": "Agent"}), run_id="second")

    system = scripted_llm.requests("memo2")[0]["messages"][0]["content"]
    assert "Lessons from earlier runs" in system
    assert "check the freezer first" in system


def test_tool_calls_with_an_explicit_string_body_keep_the_body(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "body",
        [
            reply(
                tool_calls=[
                    call("http_request", {"method": "PUT", "url": f"{endpoint.url}/k", "body": "raw"})
                ]
            ),
            reply("ok"),
        ],
    )

    runner.run(agent(scripted_llm.base_url, "body", tools=[http_tool("127.0.0.1")]))

    assert endpoint.requests[0].body == "raw"
    assert endpoint.requests[0].idempotency_key == "run-1/step-1/tool-0"


def test_a_failing_primary_model_falls_back_to_the_next_model(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("primary", [error(400, "context too long")])
    scripted_llm.script("backup", [reply("from the backup", usage=(7, 3))])
    spec = agent(
        scripted_llm.base_url,
        "primary",
        model={"fallbacks": [{"name": "openai/backup", "apiBase": scripted_llm.base_url}]},
    )

    result = runner.run(spec)

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "from the backup")
    assert len(scripted_llm.requests("primary")) == 1, "a 400 is not retried"
    answer = next(r for r in runner.journal_records() if r.kind is Kind.RESULT and r.key == "step-1/model")
    assert answer.data["model"] == "backup"


def test_when_every_model_fails_the_run_fails_naming_each(scripted_llm: ScriptedLLM, runner: Runner) -> None:
    scripted_llm.script("first", [error(401, "bad key")])
    scripted_llm.script("second", [error(404, "no such model")])
    spec = agent(
        scripted_llm.base_url,
        "first",
        model={"fallbacks": [{"name": "openai/second", "apiBase": scripted_llm.base_url}]},
    )

    result = runner.run(spec)

    assert (result.phase, result.reason) == (RunPhase.FAILED, "ModelFailed")
    assert "openai/first" in result.message
    assert "openai/second" in result.message
    assert runner.api_key not in result.message


def test_progress_is_reported_after_every_step_with_usage_and_plan(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script(
        "progress",
        [
            reply(tool_calls=[call("update_plan", {"plan": "step one"})], usage=(10, 1)),
            reply(tool_calls=[call("update_plan", {"plan": "step two"})], usage=(20, 2)),
            reply("done", usage=(30, 3)),
        ],
    )
    seen: list[Progress] = []
    ctx = runner.context(agent(scripted_llm.base_url, "progress"))
    ctx.on_progress = seen.append

    run_agent(ctx)

    assert [(p.steps, p.usage.total_tokens, p.plan) for p in seen] == [
        (1, 11, "step one"),
        (2, 33, "step two"),
    ]


def test_an_http_endpoint_tool_sends_get_arguments_as_query_and_post_arguments_as_json(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint
) -> None:
    scripted_llm.script(
        "endpoints",
        [
            reply(tool_calls=[call("lookup", {"sku": "A-1"}), call("order", {"sku": "A-1", "n": 2})]),
            reply("ordered"),
        ],
    )
    schema = {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}
    tools = [
        {
            "name": "lookup",
            "description": "Find a SKU.",
            "http": {"url": f"{endpoint.url}/sku", "inputSchema": schema},
        },
        {
            "name": "order",
            "description": "Order a SKU.",
            "http": {"url": f"{endpoint.url}/orders", "method": "POST"},
        },
    ]

    result = runner.run(agent(scripted_llm.base_url, "endpoints", tools=tools))

    assert result.phase is RunPhase.SUCCEEDED
    assert [(r.method, r.path, r.body) for r in endpoint.requests] == [
        ("GET", "/sku?sku=A-1", ""),
        ("POST", "/orders", '{"sku": "A-1", "n": 2}'),
    ]
    sent = {t["function"]["name"]: t["function"] for t in scripted_llm.requests("endpoints")[0]["tools"]}
    assert sent["lookup"]["parameters"] == schema
    assert sent["lookup"]["description"] == "Find a SKU."


def test_memory_notes_can_be_read_back_in_the_same_run(scripted_llm: ScriptedLLM, runner: Runner) -> None:
    scripted_llm.script(
        "notes",
        [
            reply(tool_calls=[call("memory_write", {"key": "freezer", "value": "-18C"})]),
            reply(tool_calls=[call("memory_read", {"key": "freezer"})]),
            reply("noted"),
        ],
    )

    runner.run(agent(scripted_llm.base_url, "notes"))

    assert '"freezer": "-18C"' in tool_messages(scripted_llm.requests("notes")[2])[-1]


def test_an_agent_with_memory_disabled_gets_no_memory_tools(
    scripted_llm: ScriptedLLM, runner: Runner
) -> None:
    scripted_llm.script("nomemory", [reply("ok")])

    runner.run(agent(scripted_llm.base_url, "nomemory", memory={"scope": "Disabled"}))

    names = {t["function"]["name"] for t in scripted_llm.requests("nomemory")[0]["tools"]}
    assert names == {"update_plan", "finish"}
