"""The fleets in `examples/`, run on the testbed as written except where a laptop differs from production.

`load_fleet("cold-chain")` reads every object of one example folder; `adapt_fleet` points its agents at the
scripted model (model `openai/<agent name>`, so each agent is its own scripted conversation), and its http
tools, its built-in http tool's allowedHosts and its guardrails at one local `StandInServices` server that
counts calls per method and path (and answers as a test scripts it). It lets its policies reach that
server, and drops schedules' cron so only the signals the test sends start runs. `signal_sender`
makes a service account allowed to post CloudEvents to the operator's signal endpoint, as the endpoint's
docs tell an admin to.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from agency_testbed.cluster import Kubectl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SIGNALS_AUDIENCE = "agency.dev/signals"
JsonDict = dict[str, Any]


class StandInServices(ThreadingHTTPServer):
    """Every http tool of a fleet lands here; `order` lists each call's `(method, path)` as it came (`count`
    tells how many of one) so a test sees what was done. Every path answers 200 unless `answer` scripted it
    otherwise."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: dict[tuple[str, str], list[Any]] = {}
        self.order: list[tuple[str, str]] = []
        self.statuses: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the calls of `path` with these statuses in turn, the last one from then on."""
        with self.lock:
            self.statuses[path] = list(statuses)

    def next_status(self, path: str) -> int:
        """The status for the next call of `path` (called with the lock held)."""
        scripted = self.statuses.get(path)
        if not scripted:
            return 200
        return scripted.pop(0) if len(scripted) > 1 else scripted[0]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return self.order.count((method, path))


class _Handler(BaseHTTPRequestHandler):
    server: StandInServices

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        key = (self.command, self.path.split("?", 1)[0])
        with self.server.lock:
            self.server.bodies.setdefault(key, []).append(json.loads(raw) if raw else None)
            self.server.order.append(key)
            number = self.server.order.count(key)
            status = self.server.next_status(key[1])
        data = json.dumps({"ok": status < 400, "id": f"{key[1].rsplit('/', 1)[-1]}-{number}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle


@contextmanager
def stand_in_services() -> Iterator[StandInServices]:
    """A running `StandInServices`, shut down on exit."""
    services = StandInServices()
    thread = threading.Thread(target=services.serve_forever, daemon=True)
    thread.start()
    try:
        yield services
    finally:
        services.shutdown()
        services.server_close()


def load_fleet(example: str) -> dict[str, JsonDict]:
    """The objects of `examples/<example>/`, keyed `Kind/name`."""
    found: dict[str, JsonDict] = {}
    for path in sorted((EXAMPLES / example).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def adapt_fleet(
    fleet: dict[str, JsonDict], namespace: str, model_url: str, services: StandInServices
) -> list[JsonDict]:
    """The fleet's policies, agents and schedules (not its hand-started runs), changed only where the
    testbed differs from production, plus the model credentials Secret the agents name."""
    objects: list[JsonDict] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "model-credentials", "namespace": namespace},
            "stringData": {"api-key": "test-key-not-a-secret"},
        }
    ]
    for original in fleet.values():
        doc = copy.deepcopy(original)
        doc["metadata"]["namespace"] = namespace
        spec = doc["spec"]
        kind = doc["kind"]
        if kind == "AgentRun":
            continue
        if kind == "AgentPolicy":
            spec.setdefault("models", {}).setdefault("allowed", []).append("openai/*")
            network = spec.setdefault("network", {})
            network.setdefault("egress", []).append(
                {"hosts": ["127.0.0.1"], "ports": [{"port": services.port}]}
            )
            if "identity" in spec:
                spec["identity"]["clusterRoles"] = []  # no chart here: no agency-agent-read-only
        elif kind == "Agent":
            spec["model"] = {
                "name": f"openai/{doc['metadata']['name']}",
                "apiBase": model_url,
                "credentialsSecretRef": {"name": "model-credentials", "key": "api-key"},
                "pricing": {"inputPerMillionTokensUSD": 3.0, "outputPerMillionTokensUSD": 15.0},
            }
            for tool in spec.get("tools", []):
                http = tool.get("http")
                if http:
                    http["url"] = _stand_in(services, http["url"])
                    http.pop("headers", None)  # the stand-in services need no credentials
                if tool.get("builtin") == "http" and "allowedHosts" in tool.get("settings", {}):
                    tool["settings"]["allowedHosts"] = "127.0.0.1"
            for guardrail in spec.get("guardrails", []):
                guardrail["url"] = _stand_in(services, guardrail["url"])
        elif kind == "AgentSchedule":
            # Only the test's signals start runs: a clock tick would start one the script did not plan for.
            spec.pop("cron", None)
            spec.pop("timeZone", None)
        objects.append(doc)
    return objects


def _stand_in(services: StandInServices, url: str) -> str:
    """The URL with its scheme and host replaced by the stand-in services' (its path kept)."""
    return f"{services.url}/{url.split('/', 3)[3]}"


def signal_sender(kubectl: Kubectl, namespace: str, name: str = "sensor") -> str:
    """A token of a new service account that may post signals to `namespace` (Role on signals.agency.dev)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "signal-sender", "namespace": namespace},
        "rules": [{"apiGroups": ["agency.dev"], "resources": ["signals"], "verbs": ["create"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{name}-sends-signals", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "signal-sender"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    kubectl("create", "serviceaccount", name, "-n", namespace)
    kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )
    return kubectl("create", "token", name, "-n", namespace, "--audience", SIGNALS_AUDIENCE).stdout.strip()


def post_signal(url: str, token: str, event: JsonDict) -> JsonDict:
    """Post one structured CloudEvent to the signal endpoint; its JSON answer (raises unless 202)."""
    answer = httpx.post(
        url,
        content=json.dumps(event),
        headers={"Content-Type": "application/cloudevents+json", "Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if answer.status_code != 202:
        raise AssertionError(f"the signal endpoint answered {answer.status_code}: {answer.text}")
    result: JsonDict = answer.json()
    return result
