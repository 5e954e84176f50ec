"""One code path builds the run's environment: a Pod and a local process differ only in placement."""

from __future__ import annotations

from pathlib import Path

from operator_objects import run_body, run_obj

from agency_operator.environment import Placement, build_run_env, traceparent
from agency_operator.runpod import pod_placement
from agency_operator.settings import Settings
from agency_runtime.api.run import AgentRun
from agency_runtime.contract import Budget, RunEnv

PLACEMENT_VARIABLES = {
    "AGENCY_RUN_FILE",
    "AGENCY_KUBE_API",
    "AGENCY_KUBE_CA_FILE",
    "AGENCY_KUBE_TOKEN_FILE",
    "AGENCY_JOURNAL",
}


def test_pod_and_local_environments_differ_only_in_where_things_are() -> None:
    local = Placement(
        Path("/w/run.json"), "https://127.0.0.1:6443", Path("/w/ca.crt"), Path("/w/token"), "file:/w/j"
    )
    budget = Budget(max_tokens=100)
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    in_pod = build_run_env(
        run_obj(), budget, pod_placement(Settings()), otlp_endpoint="http://o:4318", trace_parent=parent
    )
    on_host = build_run_env(run_obj(), budget, local, otlp_endpoint="http://o:4318", trace_parent=parent)
    pod_env, local_env = in_pod.to_env(), on_host.to_env()
    assert set(pod_env) == set(local_env)
    assert {k for k in pod_env if pod_env[k] != local_env[k]} == PLACEMENT_VARIABLES
    assert RunEnv.from_env(local_env) == on_host  # the runtime reads back exactly what was built


def test_annotated_trace_parent_is_used_as_is() -> None:
    body = run_body()
    body["metadata"]["annotations"]["agency.dev/traceparent"] = (
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )
    assert (
        traceparent(AgentRun.from_k8s(body), None)
        == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )


def test_child_run_joins_its_parents_trace() -> None:
    child = traceparent(run_obj(), "4bf92f3577b34da6a3ce929d0e0e4736")
    assert child is not None
    assert child.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert child.endswith("-01")


def test_run_without_parent_starts_its_own_trace() -> None:
    assert traceparent(run_obj(), None) is None
    assert traceparent(run_obj(), "not-a-trace-id") is None
