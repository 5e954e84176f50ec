"""Pytest fixtures for the scripted LLM server; a plugin module (``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agency_testbed.llm import ScriptedLLM


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """A started scripted LLM server on 127.0.0.1 and a free port, fresh for each test.

    Script it with ``scripted_llm.script(name, [...])`` and point litellm at
    ``model="openai/<name>", api_base=scripted_llm.base_url``.
    """
    with ScriptedLLM() as llm:
        yield llm
