"""`agency run -f agent.yaml --input ...` runs one agent locally, no cluster, and can continue a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply

AGENCY = str(Path(sys.executable).with_name("agency"))


def _agency(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "AGENCY_MODEL_API_KEY": "sk-cli-secret"}
    return subprocess.run(
        [AGENCY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _last_json(output: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def test_agency_run_runs_an_agent_yaml_to_a_result_and_prints_it(
    scripted_llm: ScriptedLLM, tmp_path: Path
) -> None:
    scripted_llm.script(
        "cli",
        [
            reply(tool_calls=[call("update_plan", {"plan": "say hi"})], usage=(30, 3)),
            reply("hi!", usage=(40, 4)),
        ],
    )
    agent_file = tmp_path / "agent.yaml"
    agent_file.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "agency.dev/v1alpha1",
                "kind": "Agent",
                "metadata": {"name": "greeter"},
                "spec": {
                    "model": {"name": "openai/cli", "apiBase": scripted_llm.base_url},
                    "instructions": "Greet.",
                },
            }
        )
    )

    done = _agency(
        "run",
        "-f",
        str(agent_file),
        "--input",
        "greet me",
        "--journal",
        str(tmp_path / "j"),
        "--console-traces",
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    result = _last_json(done.stdout)
    assert (result["phase"], result["result"], result["steps"], result["plan"]) == (
        "Succeeded",
        "hi!",
        2,
        "say hi",
    )
    assert result["usage"]["totalTokens"] == 77
    assert scripted_llm.requests("cli")[0]["messages"][1]["content"] == "greet me"
    assert list((tmp_path / "j").glob("local-*/journal.jsonl")), "the run's journal is in --journal"
    assert "sk-cli-secret" not in done.stdout + done.stderr
    assert '"name": "invoke_agent greeter"' in done.stderr, "console spans go to stderr, the result to stdout"


def test_agency_run_with_a_policy_enforces_its_budget(scripted_llm: ScriptedLLM, tmp_path: Path) -> None:
    scripted_llm.script(
        "clibudget", [reply(tool_calls=[call("update_plan", {"plan": "x"})])], repeat_last=True
    )
    (tmp_path / "agent.yaml").write_text(
        yaml.safe_dump(
            {"model": {"name": "openai/clibudget", "apiBase": scripted_llm.base_url}, "instructions": "Loop."}
        )
    )
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({"budgets": {"perRun": {"maxSteps": 2}}}))

    done = _agency("run", "-f", "agent.yaml", "--policy", "policy.yaml", "--journal", "j", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    result = _last_json(done.stdout)
    assert (result["phase"], result["limit"], result["steps"]) == ("BudgetExceeded", "steps", 2)


def test_agency_run_names_a_broken_agent_file_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump({"instructions": "no model"}))

    done = _agency("run", "-f", "agent.yaml", cwd=tmp_path)

    assert done.returncode == 2
    assert "not a valid Agent" in done.stderr
    assert "model" in done.stderr
