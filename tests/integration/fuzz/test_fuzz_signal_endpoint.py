"""Malformed CloudEvents sent to the signal endpoint of a running operator (`AGENCY_SIGNALS_PORT`), by a
sender with a real token for the endpoint's audience and RBAC to send signals.

Properties, for every generated request: never a 5xx; one of the statuses the case allows; a refusal is a
JSON `{"error", "message"}` whose message names what is wrong; a refused request starts no run; an
accepted one starts exactly the runs it names, and an invalid traceparent is not passed on to its run.
After all of them, a valid event is still accepted and starts its run, and the operator logged no error.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator

import httpx
from hypothesis import example, given, settings

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import JsonDict, OperatorFactory, api_list, apply, run_path
from agency_testbed.procs import free_port
from integration.fuzz import valid_manifests as valid
from integration.fuzz.bad_events import (
    NO_AUTH,
    STRUCTURED,
    TOKEN,
    EventCase,
    bad_events,
    event,
    regressions,
)
from integration.fuzz.profile import FUZZ
from integration.fuzz.tally import Tally, tally
from integration.fuzz.valid_manifests import named
from integration.fuzz.verdicts import log_problems

AUDIENCE = "agency.dev/signals"
TRACEPARENT = "agency.dev/traceparent"
#: Malformed requests per run: several times the manifests' count, they are cheap.
EVENTS_PER_EXAMPLE = 3


def _schedule(namespace: str) -> JsonDict:
    """The fuzz's valid AgentSchedule, reduced to one signal trigger whose input shows the event's data."""
    manifest: JsonDict = named(valid.schedule(namespace), "coldchain")
    spec = manifest["spec"]
    del spec["cron"], spec["timeZone"]
    spec["input"] += " ({{ signal.data }})"
    spec["concurrencyPolicy"] = "Allow"
    spec["signals"][0].pop("threshold")
    return manifest


def _sender(kubectl: Kubectl, namespace: str) -> str:
    """A ServiceAccount allowed to create `signals` in the namespace, and its token for the endpoint."""
    rule = {"apiGroups": ["agency.dev"], "resources": ["signals"], "verbs": ["create"]}
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "signal-sender"}
    subject = {"kind": "ServiceAccount", "name": "sensor", "namespace": namespace}
    rbac = "rbac.authorization.k8s.io/v1"
    kubectl("create", "serviceaccount", "sensor", "-n", namespace)
    apply(
        kubectl,
        {"apiVersion": rbac, "kind": "Role", "metadata": _meta("signal-sender", namespace), "rules": [rule]},
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": _meta("sensor-sends", namespace),
            "roleRef": role_ref,
            "subjects": [subject],
        },
    )
    return kubectl("create", "token", "sensor", "-n", namespace, "--audience", AUDIENCE).stdout.strip()


def _meta(name: str, namespace: str) -> JsonDict:
    return {"name": name, "namespace": namespace}


class Sender:
    """Posts cases to the endpoint and judges each answer into the tally."""

    def __init__(self, testbed: Testbed, namespace: str, port: int, token: str, counts: Tally) -> None:
        self.testbed, self.namespace, self.token, self.tally = testbed, namespace, token, counts
        self.base = f"http://127.0.0.1:{port}"
        self.started: set[str] = set()

    def runs(self) -> dict[str, JsonDict]:
        return {r["metadata"]["name"]: r for r in api_list(self.testbed, run_path(self.namespace))}

    def post(self, case: EventCase) -> httpx.Response:
        headers = dict(case.headers)
        if case.authorization != NO_AUTH:
            headers["Authorization"] = case.authorization.replace(TOKEN, self.token)
        url = f"{self.base}/namespaces/{case.namespace or self.namespace}/signals"
        content: bytes | Iterator[bytes] = _chunks(case.body) if case.chunked else case.body
        return httpx.post(url, content=content, headers=headers, timeout=30)

    def judge(self, case: EventCase) -> None:
        self.tally.generated += 1
        self.tally.mutations[case.mutation] += 1
        before = set(self.runs())
        answer = self.post(case)
        after = self.runs()
        new = set(after) - before
        code, what = answer.status_code, case.describe()
        if code >= 500 or code not in case.expect:
            self.tally.fail(f"{what}: answered {code} (allowed: {sorted(case.expect)}): {answer.text[:300]}")
        if code >= 400:
            self.tally.rejected += 1
            if new:
                self.tally.fail(f"{what}: refused with {code} but started runs {sorted(new)}")
            message = _message(answer)
            if message and (not case.says or any(w.lower() in message.lower() for w in case.says)):
                self.tally.rejected_naming_field += 1
            else:
                self.tally.fail(
                    f"{what}: the {code} refusal does not say {' or '.join(case.says)}: {message!r}"
                )
            return
        self.tally.accepted += 1
        named = set(answer.json().get("runs") or []) if code == 202 else set()
        problems = [f"started {sorted(new - named)} it does not name"] if new - named else []
        problems += [f"names {sorted(named - set(after))} that do not exist"] if named - set(after) else []
        if case.ignored_traceparent:
            joined = [n for n in new if TRACEPARENT in (after[n]["metadata"].get("annotations") or {})]
            problems += [f"passed the invalid traceparent on to {joined}"] if joined else []
        for problem in problems:
            self.tally.fail(f"{what}: accepted, but {problem}")
        self.tally.reconciled += not problems
        self.started |= new


def _message(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or not body.get("error"):
        return ""
    return str(body.get("message") or "")


def _chunks(body: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_malformed_cloudevents_are_refused_with_a_reason_and_start_nothing(
    operator: OperatorFactory, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    port = free_port()
    apply(kubectl, _schedule(namespace))
    process = operator.start(executor="pod", env={"AGENCY_SIGNALS_PORT": str(port)})
    sender = Sender(testbed, namespace, port, _sender(kubectl, namespace), tally("Signal endpoint"))
    ids = itertools.count()
    drawn: list[EventCase] = []

    @settings(FUZZ, max_examples=FUZZ.max_examples * EVENTS_PER_EXAMPLE)
    @given(bad_events(lambda: f"reading-{next(ids)}"))
    def draw(case: EventCase) -> None:
        drawn.append(case)

    for known in regressions():
        draw = example(known)(draw)
    draw()
    began = time.monotonic()
    for case in drawn:
        sender.judge(case)

    good = json.dumps(event("after-the-fuzz")).encode()
    still = sender.post(EventCase("valid-afterwards", {"Content-Type": STRUCTURED}, good, frozenset({202})))
    sender.tally.seconds += time.monotonic() - began
    assert still.status_code == 202, still.text
    assert still.json()["results"][0]["outcome"] == "Created", still.text
    assert process.alive()
    for line in log_problems(process.log.read_text(errors="replace").splitlines()):
        sender.tally.fail(f"operator log: {line}")
    assert not sender.tally.failures, json.dumps(sender.tally.failures, indent=1)
