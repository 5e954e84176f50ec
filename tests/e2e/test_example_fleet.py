"""The example fleet in `examples/` does what its README promises, on the testbed with the scripted model:
the real operator with its signal endpoint on, the real runtime (local executor), stand-in HTTP services
that count every call, and approvals made with `kubectl agency approve`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.example_fleet import (
    JsonDict,
    StandInServices,
    adapt_fleet,
    load_fleet,
    post_signal,
    signal_sender,
    stand_in_services,
)
from agency_testbed.fixtures_operator import (
    OperatorFactory,
    api_list,
    apply,
    run_path,
    wait_for_phase,
)
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import Reply, call, reply
from agency_testbed.procs import free_port

RUN_TIMEOUT = 180.0


@pytest.fixture
def services() -> Iterator[StandInServices]:
    with stand_in_services() as running:
        yield running


def _start_fleet(
    example: str,
    operator: OperatorFactory,
    kubectl: Kubectl,
    namespace: str,
    scripted_llm: ScriptedLLM,
    services: StandInServices,
) -> tuple[str, str]:
    """Apply the adapted example and start the operator with signals on; the endpoint URL and a token."""
    apply(kubectl, *adapt_fleet(load_fleet(example), namespace, scripted_llm.base_url, services))
    port = free_port()
    operator.start(executor="local", env={"AGENCY_SIGNALS_PORT": str(port)})
    return f"http://127.0.0.1:{port}/namespaces/{namespace}/signals", signal_sender(kubectl, namespace)


def _approve(testbed: Testbed, namespace: str, run: str) -> None:
    """One click: `kubectl agency approve RUN`, as the approver would type it."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-agency"), "approve", run, "-n", namespace],
        env=testbed.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _only_run(started: JsonDict) -> str:
    (name,) = started["runs"]
    return str(name)


def _schedule_runs(testbed: Testbed, namespace: str, schedule: str) -> list[str]:
    return [
        r["metadata"]["name"]
        for r in api_list(testbed, run_path(namespace), f"agency.dev/schedule={schedule}")
    ]


def _temperature(event_id: str, celsius: float) -> JsonDict:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "sensors/truck-4",
        "type": "com.example.coldchain.temperature",
        "datacontenttype": "application/json",
        "data": {"celsius": celsius, "lot": "L-889", "containerId": "MSKU-4471"},
    }


def test_cold_chain_excursion_quarantines_and_tickets_at_once_and_dispatches_a_replacement_once_approved(
    operator: OperatorFactory,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
    services: StandInServices,
) -> None:
    scripted_llm.script(
        "cold-chain-monitor",
        [
            reply(tool_calls=[call("quarantine_lot", {"lot": "L-889", "reason": "11.5 °C, above 8 °C"})]),
            reply(tool_calls=[call("open_qa_ticket", {"lot": "L-889", "summary": "Lot held at 11.5 °C"})]),
            reply(tool_calls=[call("dispatch_replacement", {"lot": "L-889", "destination": "Utrecht"})]),
            reply("Lot L-889 quarantined, QA ticket opened, replacement dispatched to Utrecht."),
        ],
        repeat_last=True,
    )
    url, token = _start_fleet("cold-chain", operator, kubectl, namespace, scripted_llm, services)

    within_range = post_signal(url, token, _temperature("reading-1", 5.0))
    assert within_range["results"][0]["outcome"] == "Insignificant"
    assert _schedule_runs(testbed, namespace, "cold-chain-watch") == []

    run = _only_run(post_signal(url, token, _temperature("reading-2", 11.5)))
    waiting = wait_for_phase(testbed, namespace, run, "WaitingForApproval", timeout=RUN_TIMEOUT)
    (pending,) = waiting["pendingApprovals"]
    assert pending["tool"] == "dispatch_replacement"
    assert "Utrecht" in pending["argumentsSummary"]
    assert services.count("POST", "/v1/quarantines") == 1
    assert services.count("POST", "/v1/tickets") == 1
    assert services.count("POST", "/v1/replacements") == 0, "the dispatch waits for approval"

    _approve(testbed, namespace, run)
    done = wait_for_phase(testbed, namespace, run, "Succeeded", timeout=RUN_TIMEOUT)
    assert done["pendingApprovals"] == []
    assert services.count("POST", "/v1/replacements") == 1
    assert services.bodies[("POST", "/v1/replacements")] == [{"lot": "L-889", "destination": "Utrecht"}]
    assert (services.count("POST", "/v1/quarantines"), services.count("POST", "/v1/tickets")) == (1, 1)
    assert _schedule_runs(testbed, namespace, "cold-chain-watch") == [run]


def _forecast(event_id: str, forecast: float, budget: float) -> JsonDict:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "billing/exporter",
        "type": "com.example.finops.forecast",
        "datacontenttype": "application/json",
        "data": {"month": "2026-11", "forecastUSD": forecast, "budgetUSD": budget},
    }


def test_budget_overrun_forecast_waits_with_a_rightsizing_proposal_that_one_approval_executes_once(
    operator: OperatorFactory,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
    services: StandInServices,
) -> None:
    rightsizing = {"namespace": "shop", "deployment": "search", "replicas": 4, "savingUSD": 2100}
    scripted_llm.script(
        "finops-forecaster",
        [
            reply(tool_calls=[call("get_cost_breakdown", {"month": "2026-11"})]),
            reply(tool_calls=[call("rightsize_deployment", rightsizing)]),
            reply("Proposed shrinking shop/search to 4 replicas, saving 2100 USD a month."),
        ],
        repeat_last=True,
    )
    url, token = _start_fleet("budget-overrun", operator, kubectl, namespace, scripted_llm, services)

    within_budget = post_signal(url, token, _forecast("forecast-1", 9000, 10000))
    assert within_budget["results"][0]["outcome"] == "Insignificant"
    assert _schedule_runs(testbed, namespace, "budget-watch") == []

    run = _only_run(post_signal(url, token, _forecast("forecast-2", 12000, 10000)))
    waiting = wait_for_phase(testbed, namespace, run, "WaitingForApproval", timeout=RUN_TIMEOUT)
    (pending,) = waiting["pendingApprovals"]
    assert (pending["tool"], pending["risk"]) == ("rightsize_deployment", "destructive")
    assert services.count("GET", "/v1/breakdown") == 1
    assert services.count("POST", "/v1/rightsizings") == 0, "the rightsizing waits for approval"

    _approve(testbed, namespace, run)
    done = wait_for_phase(testbed, namespace, run, "Succeeded", timeout=RUN_TIMEOUT)
    assert services.bodies[("POST", "/v1/rightsizings")] == [rightsizing]
    assert done["result"] == "Proposed shrinking shop/search to 4 replicas, saving 2100 USD a month."


TABLE_PATH = "/v1/tables/orders"
DRIFT_ANSWER = "Partition 2026-12-07 quarantined, orders back on snapshot s-41, pull request opened."


def _drift(event_id: str, removed: list[str], retyped: list[str], added: list[str]) -> JsonDict:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "lake/registry",
        "type": "com.example.lake.schema.drift",
        "datacontenttype": "application/json",
        "data": {
            "table": "orders",
            "partition": "2026-12-07",
            "removedColumns": removed,
            "retypedColumns": retyped,
            "addedColumns": added,
        },
    }


def _lake_change(method: str, url: str, body: JsonDict, undo: JsonDict) -> Reply:
    """The model's reply that changes the lake with `http_request`, saying how to undo it."""
    return reply(
        tool_calls=[call("http_request", {"method": method, "url": url, "body": body, "undo": undo})]
    )


def _script_drift_response(scripted_llm: ScriptedLLM, services: StandInServices) -> JsonDict:
    """The schema-drift guard's conversation as its instructions ask; the pull request it opens."""
    lake = f"{services.url}{TABLE_PATH}"
    pull = {"repository": "orders-producer", "title": "Restore orders.amount", "body": "amount was removed."}
    scripted_llm.script(
        "schema-drift-guard",
        [
            reply(tool_calls=[call("get_schema_diff", {"table": "orders", "partition": "2026-12-07"})]),
            _lake_change(
                "POST",
                f"{lake}/quarantines",
                {"partition": "2026-12-07"},
                {"method": "DELETE", "url": f"{lake}/quarantines/2026-12-07"},
            ),
            _lake_change(
                "PUT",
                f"{lake}/current",
                {"snapshot": "s-41"},
                {"method": "PUT", "url": f"{lake}/current", "body": {"snapshot": "s-42"}},
            ),
            reply(tool_calls=[call("open_pull_request", pull)]),
            reply(DRIFT_ANSWER),
        ],
        repeat_last=True,
    )
    return pull


def test_schema_drift_is_quarantined_rolled_back_and_gets_a_pull_request_without_waiting_for_anyone(
    operator: OperatorFactory,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
    services: StandInServices,
) -> None:
    pull = _script_drift_response(scripted_llm, services)
    url, token = _start_fleet("schema-drift", operator, kubectl, namespace, scripted_llm, services)

    additive = post_signal(url, token, _drift("drift-1", [], [], ["coupon"]))
    assert additive["results"][0]["outcome"] == "Insignificant"
    assert _schedule_runs(testbed, namespace, "schema-drift-watch") == []

    run = _only_run(post_signal(url, token, _drift("drift-2", ["amount"], [], [])))
    done = wait_for_phase(testbed, namespace, run, "Succeeded", timeout=RUN_TIMEOUT)
    assert (
        done["result"]
        == "Partition 2026-12-07 quarantined, orders back on snapshot s-41, pull request opened."
    )
    assert services.bodies[("POST", f"{TABLE_PATH}/quarantines")] == [{"partition": "2026-12-07"}]
    assert services.bodies[("PUT", f"{TABLE_PATH}/current")] == [{"snapshot": "s-41"}]
    assert services.bodies[("POST", "/v1/pulls")] == [pull]
    # The consumers were checked after each lake change (not after the read or the pull request).
    assert services.count("GET", "/v1/health/orders") == 2
    assert services.count("DELETE", f"{TABLE_PATH}/quarantines/2026-12-07") == 0


def test_schema_drift_whose_rollback_breaks_the_consumers_is_undone_newest_first(
    operator: OperatorFactory,
    kubectl: Kubectl,
    testbed: Testbed,
    namespace: str,
    scripted_llm: ScriptedLLM,
    services: StandInServices,
) -> None:
    _script_drift_response(scripted_llm, services)
    services.answer("/v1/health/orders", 200, 503)  # fine after the quarantine, broken after the switch
    url, token = _start_fleet("schema-drift", operator, kubectl, namespace, scripted_llm, services)

    run = _only_run(post_signal(url, token, _drift("drift-3", [], ["amount"], [])))
    done = wait_for_phase(testbed, namespace, run, "Failed", timeout=RUN_TIMEOUT)
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "RolledBack"
    assert "consumers-healthy" in ready["message"]
    changes = [(method, path) for method, path in services.order if method != "GET"]
    assert changes == [
        ("POST", f"{TABLE_PATH}/quarantines"),
        ("PUT", f"{TABLE_PATH}/current"),
        ("PUT", f"{TABLE_PATH}/current"),  # the undo of the switch first: back to the drifted snapshot
        ("DELETE", f"{TABLE_PATH}/quarantines/2026-12-07"),
    ]
    assert services.bodies[("PUT", f"{TABLE_PATH}/current")] == [{"snapshot": "s-41"}, {"snapshot": "s-42"}]
    assert services.count("POST", "/v1/pulls") == 0, "a run whose changes were undone opens no pull request"
