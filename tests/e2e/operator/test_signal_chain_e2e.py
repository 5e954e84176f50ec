"""An event-driven chain end to end: a monitor agent publishes a signal, the signal endpoint served by the
real operator passes it through a schedule's significance test, and a QA agent's run starts; both runs are
one trace in Jaeger, the QA run under the monitor's publish_signal call (local executor, real runtime,
scripted model). The endpoint is served over TLS with a certificate of a private CA that only the
operator's AGENCY_SIGNALS_CA_FILE names: the publishing run trusts it because the operator passed it on."""

from __future__ import annotations

from pathlib import Path

from agency_testbed.certs import make_serving_pair
from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import (
    JsonDict,
    OperatorFactory,
    agent,
    api_list,
    apply,
    policy,
    run,
    run_path,
    secret,
    wait_for,
    wait_for_phase,
)
from agency_testbed.jaeger import Jaeger, TraceView
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from agency_testbed.procs import free_port

SPOILED = "com.example.coldchain.spoiled"


def _qa_schedule(namespace: str) -> JsonDict:
    return {
        "apiVersion": "agency.dev/v1alpha1",
        "kind": "AgentSchedule",
        "metadata": {"name": "qa-on-spoilage", "namespace": namespace},
        "spec": {
            "agentRef": {"name": "qa"},
            "input": "Lot {{ signal.data.lot }} reached {{ signal.data.celsius }}C: open a QA ticket.",
            "concurrencyPolicy": "Allow",
            "signals": [{"name": "too-warm", "type": SPOILED, "significance": "data.celsius > 8.0"}],
        },
    }


def test_a_published_significant_signal_starts_the_subscribed_agent_in_the_publishers_trace(
    operator: OperatorFactory,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
    jaeger: Jaeger,
    tmp_path: Path,
) -> None:
    scripted_llm.script(
        "monitor",
        [
            reply(
                tool_calls=[
                    call("publish_signal", {"type": SPOILED, "data": {"lot": "L-889", "celsius": 11.5}})
                ]
            ),
            reply("Reported lot L-889."),
        ],
    )
    scripted_llm.script("qa", [reply("QA ticket 42 opened for L-889.")])
    monitor = agent(
        namespace,
        "monitor",
        model="openai/monitor",
        tools=[{"name": "publish_signal", "builtin": "publish_signal"}],
    )
    qa = agent(namespace, "qa", model="openai/qa")
    for made in (monitor, qa):
        made["spec"]["model"]["apiBase"] = scripted_llm.base_url
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, autonomy={"idempotent": {"level": "act"}}),
        monitor,
        qa,
        _qa_schedule(namespace),
        run(namespace, "watch-1", agent_name="monitor", input="Truck 4 reads 11.5C for lot L-889."),
    )
    tls = make_serving_pair(tmp_path, "signals")
    operator.start(
        executor="local",
        env={
            "AGENCY_OTLP_ENDPOINT": jaeger.otlp_http_endpoint,
            "AGENCY_SIGNALS_PORT": str(free_port()),
            "AGENCY_SIGNALS_TLS_CERT_FILE": str(tls.cert),
            "AGENCY_SIGNALS_TLS_KEY_FILE": str(tls.key),
            "AGENCY_SIGNALS_CA_FILE": str(tls.ca_cert),
        },
    )

    published = wait_for_phase(testbed, namespace, "watch-1", "Succeeded", timeout=180)
    assert published["result"] == "Reported lot L-889.", published

    def qa_runs() -> list[JsonDict]:
        return [
            r
            for r in api_list(testbed, run_path(namespace), "agency.dev/schedule=qa-on-spoilage")
            if (r.get("status") or {}).get("phase") == "Succeeded"
        ]

    wait_for(qa_runs, 180, "the QA agent's run to succeed")
    (started,) = qa_runs()
    assert started["spec"]["trigger"]["type"] == "Signal"
    assert started["spec"]["input"] == "Lot L-889 reached 11.5C: open a QA ticket."
    assert started["status"]["result"] == "QA ticket 42 opened for L-889."
    (asked,) = scripted_llm.requests("qa")
    assert any("Lot L-889 reached 11.5C" in str(m.get("content")) for m in asked["messages"])

    trace_id = published["traceId"]
    assert started["status"]["traceId"] == trace_id, "the QA run joined the publisher's trace"
    trace = TraceView.from_json(jaeger.wait_for_trace(trace_id, min_spans=5, timeout=60))
    publish = trace.named("execute_tool publish_signal")
    assert trace.parent(publish) == trace.named("invoke_agent monitor")
    assert trace.parent(trace.named("invoke_agent qa")) == publish, trace.outline()


def test_a_published_insignificant_signal_starts_nothing(
    operator: OperatorFactory,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.script(
        "monitor",
        [
            reply(
                tool_calls=[call("publish_signal", {"type": SPOILED, "data": {"lot": "L-1", "celsius": 4.0}})]
            ),
            reply("All fine."),
        ],
    )
    monitor = agent(
        namespace,
        "monitor",
        model="openai/monitor",
        tools=[{"name": "publish_signal", "builtin": "publish_signal"}],
    )
    monitor["spec"]["model"]["apiBase"] = scripted_llm.base_url
    apply(
        kubectl,
        secret(namespace),
        policy(namespace, autonomy={"idempotent": {"level": "act"}}),
        monitor,
        agent(namespace, "qa", model="openai/qa"),
        _qa_schedule(namespace),
        run(namespace, "watch-1", agent_name="monitor", input="Truck 4 reads 4C."),
    )
    operator.start(executor="local", env={"AGENCY_SIGNALS_PORT": str(free_port())})

    wait_for_phase(testbed, namespace, "watch-1", "Succeeded", timeout=180)
    (told,) = [m for m in scripted_llm.requests("monitor")[1]["messages"] if m["role"] == "tool"]
    assert "no run was started" in told["content"]
    assert [r["metadata"]["name"] for r in api_list(testbed, run_path(namespace))] == ["watch-1"]
