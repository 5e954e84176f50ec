"""The scripted LLM server answers the real litellm client as a provider would: litellm's HTTP path runs."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download on import

import litellm
from litellm.exceptions import InternalServerError, NotFoundError, RateLimitError, Timeout

from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_client import ScriptedLLMProcess
from agency_testbed.llm_script import (
    JsonDict,
    Reply,
    call,
    delay,
    error,
    load_scripts,
    reply,
    script,
    turn_to_json,
)

# litellm's streaming reads `model_fields`/`model_computed_fields` off pydantic instances, which pydantic
# >= 2.11 deprecates; litellm silences this on import (same pattern), but pytest's per-test filters undo that.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the .* attribute on the instance is deprecated:DeprecationWarning"
)


@pytest.fixture(autouse=True)
def _finalize_abandoned_streams() -> Iterator[None]:
    """Collect cycles after each test, while no connection pool's lock is held.

    After some earlier test switched litellm to its own HTTP handler, litellm stops reading a stream at its
    last chunk and leaves httpcore's `PoolByteStream` generator suspended in a reference cycle. If the
    cyclic collector finalizes it later inside another request on the same thread, its `close()` waits for
    the pool lock that request holds, forever (encode/httpcore#990): a test hung for 300 s once in a full
    suite. The runtime never streams, so this is the streaming tests' own hazard.
    """
    yield
    gc.collect()


API_KEY = "sk-scripted-test-key"
HELLO = [{"role": "user", "content": "Is web-1 healthy?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_pod",
            "description": "Read a pod",
            "parameters": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
]


def ask(llm_base_url: str, conversation: str, messages: list[JsonDict] | None = None, **kwargs: Any) -> Any:
    """One litellm completion against the scripted server, as the runtime will make it."""
    return litellm.completion(
        model=f"openai/{conversation}",
        api_base=llm_base_url,
        api_key=API_KEY,
        messages=messages or HELLO,
        **kwargs,
    )


def rebuild(stream: Any) -> Any:
    """The whole response litellm assembles from a stream's chunks, as a non-streaming caller sees it."""
    return litellm.stream_chunk_builder(list(stream), messages=HELLO)


def test_completion_returns_the_scripted_tool_call_and_usage(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply(tool_calls=[call("get_pod", {"name": "web-1"})], usage=(100, 20))])

    response = ask(scripted_llm.base_url, "triage", tools=TOOLS)

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "get_pod"
    assert json.loads(tool_call.function.arguments) == {"name": "web-1"}
    assert tool_call.id
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (100, 20)
    assert response.usage.total_tokens == 120
    assert response.model == "triage"


def test_each_request_gets_the_next_turn_and_a_text_reply_stops(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script(
        "triage", [reply(tool_calls=[call("get_pod", {"name": "web-1"})]), reply("web-1 is fine")]
    )

    first = ask(scripted_llm.base_url, "triage")
    second = ask(scripted_llm.base_url, "triage")

    assert first.choices[0].message.tool_calls[0].function.name == "get_pod"
    assert second.choices[0].message.content == "web-1 is fine"
    assert second.choices[0].finish_reason == "stop"
    assert first.id != second.id
    assert scripted_llm.remaining("triage") == 0


def test_streamed_completion_rebuilds_the_scripted_tool_call_and_usage(scripted_llm: ScriptedLLM) -> None:
    arguments = {"name": "web-1", "namespace": "shop", "container": "app"}
    scripted_llm.script("triage", [reply(tool_calls=[call("get_pod", arguments)], usage=(100, 20))])

    stream = ask(scripted_llm.base_url, "triage", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    rebuilt = rebuild(chunks)

    tool_call_deltas = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(tool_call_deltas) > 2  # opened, then the arguments in pieces the client had to join
    (tool_call,) = rebuilt.choices[0].message.tool_calls
    assert tool_call.function.name == "get_pod"
    assert json.loads(tool_call.function.arguments) == arguments
    assert rebuilt.choices[0].finish_reason == "tool_calls"
    assert (rebuilt.usage.prompt_tokens, rebuilt.usage.completion_tokens) == (100, 20)


def test_streamed_text_arrives_in_pieces_that_join_to_the_scripted_reply(scripted_llm: ScriptedLLM) -> None:
    text = "web-1 restarted twice in the last hour because it ran out of memory."
    scripted_llm.script("triage", [reply(text)])

    pieces = [
        chunk.choices[0].delta.content
        for chunk in ask(scripted_llm.base_url, "triage", stream=True)
        if chunk.choices and chunk.choices[0].delta.content
    ]

    assert len(pieces) > 1
    assert "".join(pieces) == text


def test_rate_limit_then_success_is_retried_by_litellm_after_retry_after(
    scripted_llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    # litellm's own retries, through the OpenAI SDK (which counts them in a header). Agency's runtime
    # never asks for them (it retries itself) and takes litellm's HTTP handler instead (`llm.py`).
    monkeypatch.setenv("EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER", "false")
    scripted_llm.script("triage", [error(429, retry_after=0.3), reply("done")])

    response = ask(scripted_llm.base_url, "triage", num_retries=1)

    assert response.choices[0].message.content == "done"
    rate_limited, retried = scripted_llm.recorded("triage")
    assert (rate_limited.status, retried.status) == (429, 200)
    assert retried.headers["x-stainless-retry-count"] == "1"
    assert retried.received - rate_limited.received >= 0.3


def test_rate_limit_without_retries_surfaces_as_rate_limit_error(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [error(429, "slow down, scripted", retry_after=1), reply("never sent")])

    with pytest.raises(RateLimitError, match="slow down, scripted"):
        ask(scripted_llm.base_url, "triage", num_retries=0)

    assert len(scripted_llm.requests("triage")) == 1


def test_server_error_surfaces_as_internal_server_error(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [error(500, "the model fell over")])

    with pytest.raises(InternalServerError, match="the model fell over"):
        ask(scripted_llm.base_url, "triage", num_retries=0)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_malformed_tool_arguments_reach_the_client_unchanged(scripted_llm: ScriptedLLM, stream: bool) -> None:
    broken = '{"name": "web-1", '
    scripted_llm.script("triage", [reply(tool_calls=[call("get_pod", broken)])])

    response = ask(scripted_llm.base_url, "triage", stream=stream)
    if stream:
        response = rebuild(response)

    assert response.choices[0].message.tool_calls[0].function.arguments == broken


def test_an_exhausted_script_is_a_loud_error_naming_the_conversation(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply("only answer")])
    ask(scripted_llm.base_url, "triage")

    with pytest.raises(InternalServerError, match=r"'triage' is exhausted"):
        ask(scripted_llm.base_url, "triage", num_retries=0)

    assert [r.turn for r in scripted_llm.recorded("triage")] == [0, None]


def test_repeat_last_answers_the_last_turn_again(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply("first"), reply("again")], repeat_last=True)

    contents = [ask(scripted_llm.base_url, "triage").choices[0].message.content for _ in range(4)]

    assert contents == ["first", "again", "again", "again"]


def test_loop_starts_the_script_over(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply("first"), reply("second")], loop=True)

    contents = [ask(scripted_llm.base_url, "triage").choices[0].message.content for _ in range(3)]

    assert contents == ["first", "second", "first"]


def test_an_unscripted_conversation_is_refused_naming_the_scripted_ones(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply("hello")])

    with pytest.raises(NotFoundError, match=r"'tirage'.*scripted: triage"):
        ask(scripted_llm.base_url, "tirage")


def test_requests_are_recorded_with_what_the_model_was_sent_but_not_the_api_key(
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.script("triage", [reply(tool_calls=[call("get_pod", {"name": "web-1"})]), reply("fine")])
    first = ask(scripted_llm.base_url, "triage", tools=TOOLS)
    tool_call = first.choices[0].message.tool_calls[0]
    follow_up = [
        *HELLO,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": '{"phase": "Running"}'},
    ]
    ask(scripted_llm.base_url, "triage", messages=follow_up, tools=TOOLS)

    first_sent, second_sent = scripted_llm.requests("triage")
    assert first_sent["messages"] == HELLO
    assert first_sent["tools"] == TOOLS
    assert second_sent["messages"][-1] == {
        "role": "tool",
        "tool_call_id": tool_call.id,
        "content": '{"phase": "Running"}',
    }
    recorded = scripted_llm.recorded("triage")
    assert "authorization" not in recorded[0].headers
    assert API_KEY not in json.dumps([r.to_json() for r in recorded])


def test_usage_without_a_script_grows_with_the_conversation(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply("short"), reply("short")])
    longer = [*HELLO, {"role": "assistant", "content": "Checking."}, {"role": "user", "content": "x" * 400}]

    small = ask(scripted_llm.base_url, "triage").usage
    large = ask(scripted_llm.base_url, "triage", messages=longer).usage

    assert small.prompt_tokens > 0
    assert large.prompt_tokens >= small.prompt_tokens + 100
    assert small.completion_tokens == large.completion_tokens > 0


def test_a_callable_turn_answers_from_the_last_tool_result(scripted_llm: ScriptedLLM) -> None:
    def from_tool_result(request: JsonDict) -> Reply:
        result = json.loads(request["messages"][-1]["content"])
        return reply(f"the pod is {result['phase']}")

    scripted_llm.script("triage", [from_tool_result])
    messages = [*HELLO, {"role": "tool", "tool_call_id": "call_1", "content": '{"phase": "Pending"}'}]

    response = ask(scripted_llm.base_url, "triage", messages=messages)

    assert response.choices[0].message.content == "the pod is Pending"


def test_the_conversation_header_overrides_the_model_name(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("run-42", [reply("from the header's script")])

    response = ask(scripted_llm.base_url, "gpt-4o", extra_headers={"X-Scripted-Conversation": "run-42"})

    assert response.choices[0].message.content == "from the header's script"
    assert scripted_llm.requests("run-42")[0]["model"] == "gpt-4o"


def test_a_delayed_turn_lets_a_short_client_timeout_fire(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [delay(30, reply("too late"))])

    with pytest.raises(Timeout):
        ask(scripted_llm.base_url, "triage", timeout=0.3, num_retries=0)


def test_waiting_for_requests_that_never_come_names_how_many_came(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply("one")])
    ask(scripted_llm.base_url, "triage")

    with pytest.raises(TimeoutError, match=r"'triage': 1 request\(s\) after 0.1s, expected 2"):
        scripted_llm.wait_for_requests("triage", 2, timeout=0.1)
    assert len(scripted_llm.wait_for_requests("triage", 1, timeout=0.1)) == 1


def test_a_script_file_reads_like_the_builders(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(
        """
conversations:
  triage:
    repeat_last: true
    turns:
      - tool_calls: [{name: get_pod, arguments: {name: web-1}}]
        usage: [100, 20]
      - error: 429
        retry_after: 1
      - tool_calls: [{name: get_pod, arguments: '{"name": '}]
      - content: done
        delay: 0.5
""",
        encoding="utf-8",
    )

    scripts = load_scripts(path)

    assert scripts == {
        "triage": script(
            [
                reply(tool_calls=[call("get_pod", {"name": "web-1"})], usage=(100, 20)),
                error(429, retry_after=1),
                reply(tool_calls=[call("get_pod", '{"name": ')]),
                delay(0.5, reply("done")),
            ],
            repeat_last=True,
        )
    }


def test_a_typo_in_a_script_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"conversations": {"triage": [{"contnet": "hi"}]}}), encoding="utf-8")

    with pytest.raises(ValueError, match="contnet"):
        load_scripts(path)


def test_a_callable_turn_cannot_be_sent_to_another_process() -> None:
    with pytest.raises(TypeError, match="callable"):
        turn_to_json(lambda request: reply("x"))


def test_a_server_process_serves_its_script_file_and_is_scripted_over_http(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps({"conversations": {"from-file": [{"content": "read from the file"}]}}))

    with ScriptedLLMProcess(script_file=path) as server:
        client = server.client
        client.script("over-http", [reply(tool_calls=[call("get_pod", {"name": "web-1"})], usage=(7, 3))])

        from_file = ask(server.base_url, "from-file")
        over_http = ask(server.base_url, "over-http")
        models = httpx.get(f"{server.base_url}/models").json()
        health = httpx.get(f"{client.url}/healthz")

        assert from_file.choices[0].message.content == "read from the file"
        assert json.loads(over_http.choices[0].message.tool_calls[0].function.arguments) == {"name": "web-1"}
        assert over_http.usage.prompt_tokens == 7
        assert client.requests("over-http")[0]["messages"] == HELLO
        assert client.remaining("from-file") == 0
        assert sorted(m["id"] for m in models["data"]) == ["from-file", "over-http"]
        assert health.status_code == 200
        assert "conversation=over-http turn=0 status=200" in server.stderr()
        assert API_KEY not in server.stderr()


def test_async_completion_gets_the_scripted_reply(scripted_llm: ScriptedLLM) -> None:
    scripted_llm.script("triage", [reply(tool_calls=[call("get_pod", {"name": "web-1"})], usage=(100, 20))])

    async def ask_async() -> Any:
        return await litellm.acompletion(
            model="openai/triage", api_base=scripted_llm.base_url, api_key=API_KEY, messages=HELLO
        )

    # Not asyncio.run(): it would unset the event loop that litellm's sync completion() created (via
    # asyncio.get_event_loop()) in earlier tests, leaving it unclosed for pytest's unraisable-warning check.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        response = runner.run(ask_async())

    assert json.loads(response.choices[0].message.tool_calls[0].function.arguments) == {"name": "web-1"}
    assert response.usage.prompt_tokens == 100
