"""The `kubernetes` tool acts with the run's own token: RBAC decides, a refusal is a readable tool result,
and every change records how to undo it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agency_runtime.api.common import RunPhase
from agency_runtime.journal import Kind
from agency_runtime.loop import RunResult, run_agent
from agency_runtime.tools.base import ToolContext
from agency_runtime.tools.kubernetes import KubernetesTool
from agency_runtime.tools.registry import build_registry
from agency_testbed.cluster import Testbed
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from integration.runtime.run_identity import RunIdentity, apply, create_run
from unit.runtime.runtime_support import Runner, agent, tool_messages

SETTINGS = "app-settings"
APP_RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [SETTINGS], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete"]},
]


@pytest.fixture
def app_identity(testbed: Testbed, agency_crds: list[str], namespace: str, tmp_path: Path) -> RunIdentity:
    """A run allowed to read and patch the ConfigMap app-settings and to create and delete Services."""
    apply(
        testbed,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": SETTINGS, "namespace": namespace},
            "data": {"mode": "off"},
        },
    )
    return create_run(testbed, namespace, "run-1", tmp_path, extra_rules=APP_RULES)


def _run(runner: Runner, identity: RunIdentity, llm: ScriptedLLM, conversation: str) -> RunResult:
    spec = agent(llm.base_url, conversation, tools=[{"name": "kubernetes", "builtin": "kubernetes"}])
    ctx = runner.context(spec, run_id=identity.run.uid)
    ctx.tools = build_registry(spec, None, None, kube=identity.client(), namespace=identity.run.namespace)
    try:
        return run_agent(ctx)
    finally:
        ctx.journal.close()
        ctx.telemetry.shutdown()
        identity.close()


def _k8s(verb: str, resource: str, **more: Any) -> dict[str, Any]:
    return {"verb": verb, "apiVersion": "v1", "resource": resource, **more}


def test_an_allowed_read_returns_the_object_and_a_forbidden_one_is_a_403_the_model_reads(
    scripted_llm: ScriptedLLM, runner: Runner, app_identity: RunIdentity
) -> None:
    scripted_llm.script(
        "k8s-read",
        [
            reply(
                tool_calls=[
                    call("kubernetes", _k8s("get", "configmaps", name=SETTINGS)),
                    call("kubernetes", _k8s("list", "secrets")),
                ]
            ),
            reply("read what I could"),
        ],
    )

    result = _run(runner, app_identity, scripted_llm, "k8s-read")

    assert (result.phase, result.result) == (RunPhase.SUCCEEDED, "read what I could")
    allowed, forbidden = tool_messages(scripted_llm.requests("k8s-read")[1])
    assert json.loads(allowed)["data"] == {"mode": "off"}
    assert "managedFields" not in allowed
    assert forbidden.startswith("error: list secrets was refused: HTTP 403 Forbidden: ")
    assert f'"system:serviceaccount:{app_identity.run.namespace}:agency-run-run-1" cannot list' in forbidden


def test_a_patch_and_a_create_record_compensations_that_undo_them(
    testbed: Testbed, scripted_llm: ScriptedLLM, runner: Runner, app_identity: RunIdentity
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}], "clusterIP": "None"},
    }
    scripted_llm.script(
        "k8s-change",
        [
            reply(
                tool_calls=[
                    call(
                        "kubernetes",
                        _k8s("patch", "configmaps", name=SETTINGS, body={"data": {"mode": "on", "new": "1"}}),
                    ),
                    call("kubernetes", _k8s("create", "services", body=service)),
                ]
            ),
            reply("changed"),
        ],
    )
    namespace = app_identity.run.namespace

    result = _run(runner, app_identity, scripted_llm, "k8s-change")

    assert result.phase is RunPhase.SUCCEEDED
    settings = json.loads(testbed.kubectl("get", "configmap", SETTINGS, "-n", namespace, "-o", "json").stdout)
    assert settings["data"] == {"mode": "on", "new": "1"}
    results = {r.key: r.data for r in runner.journal_records(app_identity.run.uid) if r.kind is Kind.RESULT}
    undo_patch = results["step-1/tool-0"]["compensation"]
    undo_create = results["step-1/tool-1"]["compensation"]
    assert undo_patch["arguments"]["body"] == {"data": {"mode": "off", "new": None}}
    assert (undo_create["arguments"]["verb"], undo_create["arguments"]["name"]) == ("delete", "web")

    tool = KubernetesTool("kubernetes", None, app_identity.client(), namespace, risk=None)
    context = ToolContext(app_identity.run.uid, "rollback", "rollback")
    undone = [tool.invoke(undo["arguments"], context) for undo in (undo_create, undo_patch)]
    app_identity.close()

    assert [o.is_error for o in undone] == [False, False]
    settings = json.loads(testbed.kubectl("get", "configmap", SETTINGS, "-n", namespace, "-o", "json").stdout)
    assert settings["data"] == {"mode": "off"}
    gone = testbed.kubectl("get", "service", "web", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr
