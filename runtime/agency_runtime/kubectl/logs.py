"""`kubectl agency logs RUN [-f]`: the runtime's output for a run, wherever the executor put it.

With the pod executor the runtime is a Pod named as the run (`<run>-<attempt>` for the process that
continues after an approval), labelled `agency.dev/run=<run>`: its log comes from the API server. With
the local executor there is no Pod: the operator writes the process's output to
`<AGENCY_LOCAL_WORKDIR>/<namespace>/<run>-<uid>/runtime.log` on its own machine (default workdir
/tmp/agency-runs). When that file is on this machine it is shown; otherwise the message says where it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from agency_runtime.kubectl.client import Api, run_path
from agency_runtime.kubectl.errors import ApiError, NotFound, PluginError
from agency_runtime.kubectl.progress import FINISHED, WAITING, phase_of

JsonDict = dict[str, Any]
RUN_LABEL = "agency.dev/run"
ATTEMPT_LABEL = "agency.dev/attempt"
DEFAULT_LOCAL_WORKDIR = "/tmp/agency-runs"  # noqa: S108 - the operator's default for the local executor


def attempt_of(pod: Mapping[str, Any]) -> int:
    return int((pod["metadata"].get("labels") or {}).get(ATTEMPT_LABEL, "0"))


def run_pods(api: Api, namespace: str, run: Mapping[str, Any]) -> list[JsonDict]:
    """The run's Pods (owned by this run, not a namesake's), first attempt first."""
    name, uid = run["metadata"]["name"], run["metadata"]["uid"]
    body = api.get(
        f"/api/v1/namespaces/{namespace}/pods",
        what=f"the Pods of AgentRun {name}",
        namespace=namespace,
        params={"labelSelector": f"{RUN_LABEL}={name}"},
    )
    owned = [
        p
        for p in body.get("items", [])
        if uid in {o.get("uid") for o in p["metadata"].get("ownerReferences") or []}
    ]
    return sorted(owned, key=attempt_of)


def started(pod: Mapping[str, Any]) -> bool:
    """Whether the Pod's container ever ran: before that the API server answers an empty log."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return True
    states = [c.get("state") or {} for c in status.get("containerStatuses") or []]
    return any("running" in s or "terminated" in s for s in states)


def local_log(run: Mapping[str, Any], env: Mapping[str, str]) -> Path:
    """Where the local executor keeps the run's output (on the operator's machine)."""
    meta = run["metadata"]
    workdir = Path(env.get("AGENCY_LOCAL_WORKDIR") or DEFAULT_LOCAL_WORKDIR)
    folder = f"{meta['name']}-{meta['uid']}"
    return workdir / str(meta["namespace"]) / folder / "runtime.log"


def no_pod_message(run: Mapping[str, Any], path: Path) -> str:
    meta = run["metadata"]
    return (
        f"AgentRun {meta['name']} in namespace {meta['namespace']} has no Pod: it runs with the local "
        f"executor (or has not started yet). The local executor writes the runtime's log to {path} on the "
        "operator's machine (<AGENCY_LOCAL_WORKDIR>/<namespace>/<run>-<uid>/runtime.log, workdir "
        f"{DEFAULT_LOCAL_WORKDIR} unless the operator sets AGENCY_LOCAL_WORKDIR); it is not on this machine."
    )


def show(api: Api, namespace: str, name: str, out: TextIO, *, follow: bool, env: Mapping[str, str]) -> None:
    run = api.get(run_path(namespace, name), what=f"AgentRun {name}", namespace=namespace)
    pods = run_pods(api, namespace, run)
    if pods:
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            if not started(pod):
                phase = (pod.get("status") or {}).get("phase", "Pending")
                raise PluginError(
                    f"no log yet for Pod {pod_name} of the run: it has not started (phase {phase}; "
                    f"kubectl describe pod {pod_name} -n {namespace} says why)"
                )
            if len(pods) > 1:
                out.write(f"==> Pod {pod_name} (attempt {attempt_of(pod)}) <==\n")
            _pod_log(api, namespace, pod_name, out, follow=follow and pod is pods[-1])
        return
    path = local_log(run, env)
    if not path.exists():
        raise NotFound(no_pod_message(run, path))
    _file_log(api, namespace, name, path, out, follow=follow)


def _pod_log(api: Api, namespace: str, pod: str, out: TextIO, *, follow: bool) -> None:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    what = f"the log of Pod {pod}"
    try:
        if follow:
            for line in api.stream_lines(path, {"follow": "true"}, what=what, namespace=namespace):
                out.write(line + "\n")
                out.flush()
            return
        response = api.send("GET", path)
        if not response.is_success:
            raise api.error(response, path, what=what, namespace=namespace, action="get")
        out.write(response.text)
    except ApiError as err:  # e.g. the node holding the log is gone
        raise PluginError(f"cannot read the log of Pod {pod} of the run: {err}") from err


def _file_log(api: Api, namespace: str, name: str, path: Path, out: TextIO, *, follow: bool) -> None:
    """Print the local log; with `follow`, keep printing what is appended until the run stops."""
    with path.open(encoding="utf-8", errors="replace") as log:
        while True:
            out.write(log.read())
            out.flush()
            if not follow:
                return
            run = api.get(run_path(namespace, name), what=f"AgentRun {name}", namespace=namespace)
            if phase_of(run) in FINISHED or phase_of(run) == WAITING:
                out.write(log.read())
                return
            time.sleep(0.5)
