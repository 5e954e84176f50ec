"""Fixtures for runtime unit tests: litellm imported once (it takes seconds), a runner over a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agency_runtime.llm import load_litellm
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import reply
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Runner


@pytest.fixture(scope="session", autouse=True)
def warm_litellm() -> None:
    """Import litellm and make one call, so the first test's wall-time limits are not spent on start-up."""
    litellm = load_litellm()
    with ScriptedLLM() as llm:
        llm.script("warm", [reply("ok")])
        litellm.completion(
            model="openai/warm",
            api_base=llm.base_url,
            api_key="x",
            messages=[{"role": "user", "content": "hi"}],
        )


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def endpoint() -> Iterator[CountingEndpoint]:
    with CountingEndpoint() as server:
        yield server
