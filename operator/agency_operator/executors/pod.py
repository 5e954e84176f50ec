"""The `pod` executor: the run file as an owned ConfigMap (made beside the identity), then the run's Pod
(see `runpod`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agency_operator import names
from agency_operator.apply import ensure
from agency_operator.environment import build_run_env
from agency_operator.executors import Launch, Observation, Progress, parse_result
from agency_operator.kube import JsonDict, Kube, path_for
from agency_operator.runfile import build_run_file_config_map
from agency_operator.runpod import CONTAINER, build_pod, pod_placement
from agency_operator.settings import Settings
from agency_operator.tally import parse_time


class PodExecutor:
    event_driven = True

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings

    def prepare(self, launch: Launch) -> Sequence[JsonDict]:
        """The run file: the API server does not need the ConfigMap to accept the Pod, and the kubelet
        starts the container only once the ConfigMap it mounts exists."""
        return [build_run_file_config_map(launch.body, launch.run_file, self.settings.signals_ca())]

    def start(self, launch: Launch) -> Observation:
        """The Pod of this attempt (after an approval, the next one mounts the same run file), observed as
        the API server answered its create (or, when it existed, the read after): no second read for it."""
        env = build_run_env(
            launch.run,
            launch.budget,
            pod_placement(self.settings),
            otlp_endpoint=self.settings.otlp_endpoint,
            trace_parent=launch.trace_parent,
        )
        pod, _ = ensure(
            self.kube, build_pod(launch.body, launch.agent, launch.policy, env, self.settings, launch.attempt)
        )
        return self._observe_pod(launch.body, pod)

    def observe(self, body: Mapping[str, Any]) -> Observation:
        meta = body["metadata"]
        pods = self.kube.list(
            path_for("v1", "pods", meta["namespace"]), f"{names.RUN_UID_LABEL}={meta['uid']}"
        )
        if not pods:
            return Observation(Progress.ABSENT)
        pod = max(pods, key=lambda p: int(p["metadata"].get("labels", {}).get(names.ATTEMPT_LABEL, "0")))
        return self._observe_pod(body, pod)

    def _observe_pod(self, body: Mapping[str, Any], pod: JsonDict) -> Observation:
        meta = body["metadata"]
        attempt = int(pod["metadata"].get("labels", {}).get(names.ATTEMPT_LABEL, "0"))
        pod_name, version = pod["metadata"]["name"], pod["metadata"].get("resourceVersion")
        if pod["metadata"].get("uid") and meta["uid"] not in {
            o.get("uid") for o in pod["metadata"].get("ownerReferences", [])
        }:
            return Observation(
                Progress.FINISHED, detail=f"Pod {names.pod(meta['name'])} belongs to another object"
            )
        status = pod.get("status", {})
        phase = status.get("phase", "Pending")
        started = parse_time(status.get("startTime"))
        if phase in ("Succeeded", "Failed"):
            terminated: Mapping[str, Any] = {}
            for container in status.get("containerStatuses", []):
                terminated = container.get("state", {}).get("terminated") or {}
            result = parse_result(terminated.get("message"))
            if result is None:
                log = self.kube.text(
                    path_for("v1", "pods", meta["namespace"], pod_name) + "/log",
                    {"container": CONTAINER, "tailLines": "20"},
                )
                result = parse_result(log)
            return Observation(
                Progress.FINISHED,
                started_at=started,
                exit_code=terminated.get("exitCode"),
                result=result,
                detail=str(status.get("message") or terminated.get("reason") or phase),
                attempt=attempt,
                version=version,
            )
        if phase == "Running":
            return Observation(Progress.RUNNING, started_at=started, attempt=attempt, version=version)
        waiting = str(status.get("reason") or "the Pod is not running yet")
        return Observation(Progress.PENDING, detail=waiting, attempt=attempt, version=version)

    def stop(self, body: Mapping[str, Any]) -> None:
        """Nothing to do: the Pod is owned by the run and goes with it."""

    def sweep(self) -> int:
        """Nothing to do: the garbage collector took the Pods of runs deleted while no operator ran."""
        return 0
