"""The API models carry their field docs (the CRDs' descriptions) unless a run's process turns them off.

Each check runs in a fresh interpreter: the models are made once, when `agency_runtime.api` is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


def fresh(code: str) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(180)
def test_models_carry_field_docs_by_default_for_the_crds() -> None:
    result = fresh(
        """
        import json
        from agency_runtime.api import Agent, AgentSpec
        from agency_runtime.api.crd import crd
        field = AgentSpec.model_fields["instructions"].description
        print(json.dumps({"field": field, "in_crd": json.dumps(field)[1:-1] in json.dumps(crd(Agent))}))
        """
    )
    assert isinstance(result["field"], str)
    assert "system prompt" in result["field"]
    assert result["in_crd"] is True


@pytest.mark.timeout(180)
def test_a_runs_process_can_make_the_models_without_reading_their_docs() -> None:
    result = fresh(
        """
        import json
        import agency_runtime
        agency_runtime.FIELD_DOCS = False
        from agency_runtime.api import AgentSpec, RunBudget
        spec = AgentSpec.model_validate(
            {"instructions": "Watch the cold chain.", "model": {"name": "openai/x"}})
        print(json.dumps({
            "field": AgentSpec.model_fields["instructions"].description,
            "budget_field": RunBudget.model_fields["max_steps"].description,
            "parsed": spec.instructions,
        }))
        """
    )
    assert result["field"] is None
    assert result["budget_field"] is None
    assert result["parsed"] == "Watch the cold chain."
