"""Each model of a run is sent its own key: a fallback or a judge with a Secret key of its own never
receives the primary provider's key (the example agent falls back from Anthropic to OpenAI)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agency_runtime.contract import JUDGE_API_KEY, fallback_api_key
from agency_testbed.llm import ScriptedLLM, key_fingerprint
from agency_testbed.llm_script import error, reply
from e2e.runtime.runtime_process import API_KEY, RunSetup, RuntimeProcess
from unit.runtime.runtime_support import agent

Start = Callable[[dict[str, str]], RuntimeProcess]
OWN_KEY = "sk-fallback-own-key-not-the-primarys"
JUDGE_KEY = "sk-judge-own-key"


def test_a_fallback_with_its_own_key_is_called_with_it_and_one_without_with_the_primarys(
    scripted_llm: ScriptedLLM, tmp_path: Path, start_runtime: Start
) -> None:
    scripted_llm.script("keys-primary", [error(400, "context too long")])
    scripted_llm.script("keys-own", [error(400, "context too long")])
    scripted_llm.script("keys-shared", [reply("from the fallback without a key of its own")])
    own_ref = {"name": "other-provider", "key": "api-key"}
    spec = agent(
        scripted_llm.base_url,
        "keys-primary",
        model={
            "fallbacks": [
                {
                    "name": "openai/keys-own",
                    "apiBase": scripted_llm.base_url,
                    "credentialsSecretRef": own_ref,
                },
                {"name": "openai/keys-shared", "apiBase": scripted_llm.base_url},
            ]
        },
    )
    run = RunSetup(tmp_path)
    run.write(spec, "hi")
    env = run.env()
    env[fallback_api_key(0)] = OWN_KEY

    result = start_runtime(env).result()

    assert result["result"] == "from the fallback without a key of its own"
    (primary,) = scripted_llm.recorded("keys-primary")
    (own,) = scripted_llm.recorded("keys-own")
    (shared,) = scripted_llm.recorded("keys-shared")
    assert primary.credential == key_fingerprint(API_KEY)
    assert own.credential == key_fingerprint(OWN_KEY)
    assert shared.credential == key_fingerprint(API_KEY)


def test_the_judge_is_called_with_its_own_key(
    scripted_llm: ScriptedLLM, tmp_path: Path, start_runtime: Start
) -> None:
    scripted_llm.script("keys-agent", [reply("done")])
    scripted_llm.script("keys-judge", [reply('{"score": 0.9, "reason": "it is done"}')])
    judge_ref = {"name": "judge", "key": "api-key"}
    spec = agent(
        scripted_llm.base_url,
        "keys-agent",
        judge={
            "model": {
                "name": "openai/keys-judge",
                "apiBase": scripted_llm.base_url,
                "credentialsSecretRef": judge_ref,
            },
            "rubric": "Is it done?",
        },
    )
    run = RunSetup(tmp_path)
    run.write(spec, "hi")
    env = run.env()
    env[JUDGE_API_KEY] = JUDGE_KEY

    start_runtime(env).result()

    (judged,) = scripted_llm.recorded("keys-judge")
    assert judged.credential == key_fingerprint(JUDGE_KEY)
    asked = scripted_llm.recorded("keys-agent")
    assert asked
    assert {r.credential for r in asked} == {key_fingerprint(API_KEY)}
