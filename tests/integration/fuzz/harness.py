"""Creating fuzzed objects on the testbed as admin and following each one through the running operator.

For every case: create it (and apply its update, for transition rules) over HTTP as `kubectl` would
(`fieldValidation=Strict` unless the case says otherwise); a refusal must name the touched field; an
accepted object must parse with the API model (else the schema lets through what the code refuses), be
reconciled within a timeout, leave no error in the operator's log, and leave the operator alive.
Cases go in batches: the accepted objects of a batch are followed together, then deleted, so the namespace
(and the operator's resync) stays small while the operator still works on several objects at once. A
problem in the operator's log is charged to the case whose object it names.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import ValidationError

from agency_runtime.api import KINDS
from agency_runtime.api.meta import API_VERSION
from agency_testbed.cluster import Testbed
from agency_testbed.fixtures_operator import OperatorProcess
from agency_testbed.procs import wait_until
from integration.fuzz.mutations import Case
from integration.fuzz.tally import Tally
from integration.fuzz.valid_manifests import JsonDict, named
from integration.fuzz.verdicts import log_problems, named_field, reconciled, stuck_run

PREFIXES = {"Agent": "ag", "AgentPolicy": "pol", "AgentSchedule": "sch", "AgentRun": "run"}
RECONCILE_SECONDS = 30.0
#: Cases submitted before their accepted objects are followed together (the operator works in parallel).
BATCH = 10
Follow = Callable[[str], list[JsonDict]]
"""From the name of an accepted object to the valid objects that depend on it, in creation order."""


@dataclass
class Harness:
    testbed: Testbed
    namespace: str
    operator: OperatorProcess
    tally: Tally
    _names: itertools.count[int] = field(default_factory=itertools.count)
    _log_offset: int = 0
    _deleted: list[str] = field(default_factory=list)

    # ----- the API -------------------------------------------------------------------------------
    def path(self, kind: str, name: str | None = None) -> str:
        base = f"/apis/{API_VERSION}/namespaces/{self.namespace}/{KINDS[kind].crd.plural}"
        return f"{base}/{name}" if name else base

    def name(self, kind: str) -> str:
        return f"{PREFIXES[kind]}-{next(self._names)}"

    def create(self, manifest: JsonDict, *, strict: bool = True) -> httpx.Response:
        params = {"fieldValidation": "Strict"} if strict else {}
        with self.testbed.http(timeout=30) as http:
            return http.post(self.path(manifest["kind"]), json=manifest, params=params)

    def delete(self, kind: str, name: str) -> None:
        with self.testbed.http() as http:
            http.delete(self.path(kind, name), params={"propagationPolicy": "Background"})

    # ----- one case ------------------------------------------------------------------------------
    def submit(self, case: Case) -> str | None:
        """Create the case's object; judge a refusal; return the name of an accepted object."""
        self.tally.generated += 1
        self.tally.mutations[case.mutation] += 1
        name = self.name(case.kind)
        manifest = named(case.manifest, name)  # a mutated metadata.name stays as the case set it
        answer = self.create(manifest, strict=case.strict)
        if case.update is not None:
            if answer.status_code != 201:
                self.tally.fail(f"{case.describe()}: the valid original was refused: {answer.text[:300]}")
                return None
            # The whole spec replaced in one JSON patch: no resourceVersion to race the operator's status
            # writes, and the transition rules still compare the new spec with the old one.
            replace = [{"op": "replace", "path": "/spec", "value": named(case.update, name)["spec"]}]
            with self.testbed.http() as http:
                answer = http.patch(
                    self.path(case.kind, name),
                    json=replace,
                    params={"fieldValidation": "Strict"},
                    headers={"Content-Type": "application/json-patch+json"},
                )
            if answer.status_code >= 400:  # the original is not this case's business: it goes
                self.delete(case.kind, name)
        if answer.status_code >= 500:
            self.tally.fail(
                f"{case.describe()}: the API server answered {answer.status_code}: {answer.text[:300]}"
            )
            return None
        if answer.status_code >= 400:
            self._refused(case, answer)
            return None
        return self._accepted(case, answer.json())

    def _refused(self, case: Case, answer: httpx.Response) -> None:
        self.tally.rejected += 1
        try:
            status: JsonDict = answer.json()
        except ValueError:
            status = {"message": answer.text}
        if any(named_field(status, path) is not None for path in case.path.split(", ")):
            self.tally.rejected_naming_field += 1
        else:
            self.tally.fail(
                f"{case.describe()}: refused ({answer.status_code}) without naming {case.path}: "
                f"{status.get('message', '')[:300]} causes={(status.get('details') or {}).get('causes')}"
            )

    def _accepted(self, case: Case, body: JsonDict) -> str | None:
        self.tally.accepted += 1
        name: str = body["metadata"]["name"]
        try:
            KINDS[case.kind].from_k8s(body)
        except ValidationError as error:
            self.tally.fail(
                f"{case.describe()}: schema gap: the API server stored an object the model refuses: "
                f"{str(error).splitlines()[:3]}"
            )
            self.delete(case.kind, name)
            return None
        return name

    # ----- following accepted objects ------------------------------------------------------------
    def run(self, cases: Sequence[Case], follow: Follow | None = None) -> None:
        """Submit the cases in batches; follow each batch's accepted objects (and what `follow` makes of
        each: the Agent of a policy, the run of an Agent) until reconciled, judge them, delete them."""
        began = time.monotonic()
        for start in range(0, len(cases), BATCH):
            accepted: list[tuple[Case, list[tuple[str, str]]]] = []
            for case in cases[start : start + BATCH]:
                name = self.submit(case)
                if name is None:
                    continue
                objects = [(case.kind, name)]
                for manifest in follow(name) if follow else []:
                    created = self.follow(manifest)
                    if created is None:
                        break
                    objects.append((manifest["kind"], created))
                accepted.append((case, objects))
            self._settle(accepted)
            if not self.operator.alive():
                pytest.fail(f"the operator died:{self.operator.log_tail(40)}")
        self.tally.seconds += time.monotonic() - began

    def _listing(self, kinds: set[str]) -> dict[tuple[str, str], JsonDict]:
        found: dict[tuple[str, str], JsonDict] = {}
        with self.testbed.http() as http:
            for kind in kinds:
                response = http.get(self.path(kind))
                response.raise_for_status()
                for item in response.json()["items"]:
                    found[(kind, item["metadata"]["name"])] = item
        return found

    def _settle(self, accepted: list[tuple[Case, list[tuple[str, str]]]]) -> None:
        objects = [o for _, objs in accepted for o in objs]
        kinds = {kind for kind, _ in objects}
        seen: dict[tuple[str, str], JsonDict] = {}

        def done() -> bool:
            seen.clear()
            seen.update(self._listing(kinds))
            return all(reconciled(seen[o]) for o in objects if o in seen)

        if objects:
            with contextlib.suppress(TimeoutError):  # judged object by object below
                wait_until(done, RECONCILE_SECONDS, "the operator to reconcile")
        log = self.new_log_problems()
        for case, objs in accepted:
            problems = [p for o in objs if (p := _problem(o, seen.get(o)))]
            names = [_names(name) for _, name in objs]
            problems += [line for line in log if any(n.search(line) for n in names)]
            log = [line for line in log if not any(n.search(line) for n in names)]
            for problem in problems:
                self.tally.fail(f"{case.describe()}: {problem}")
            self.tally.reconciled += not problems
        for line in log:  # about no object of this batch
            if any(_names(name).search(line) for name in self._deleted):
                # An object of an earlier batch, judged and deleted, that a reconcile still had in hand
                # (its ServiceAccount went with it before its Pod was made): a deletion race, noted.
                self.tally.notes.append(line)
            else:
                self.tally.fail(f"operator log: {line}")
        if not self.operator.alive():
            self.tally.fail(f"the operator died:{self.operator.log_tail(30)}")
        for kind, name in reversed(objects):
            self.delete(kind, name)
            self._deleted.append(name)

    def new_log_problems(self) -> list[str]:
        with self.operator.log.open(errors="replace") as log:
            log.seek(self._log_offset)
            text = log.read()
            self._log_offset = log.tell()
        return log_problems(text.splitlines())

    def follow(self, manifest: JsonDict) -> str | None:
        """Create a valid object that depends on a fuzzed one; None (and a failure) if it is refused."""
        answer = self.create(manifest)
        if answer.status_code != 201:
            self.tally.fail(f"a valid {manifest['kind']} was refused: {answer.text[:300]}")
            return None
        created: str = answer.json()["metadata"]["name"]
        return created


def _names(name: str) -> re.Pattern[str]:
    """Finds an object's name in a log line, and not a longer name it begins (`run-1` in `run-12`)."""
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


def _problem(ref: tuple[str, str], body: JsonDict | None) -> str | None:
    """What is wrong with one followed object once the wait is over, if anything."""
    kind, name = ref
    if body is None:  # a run may finish and go at once (ttlSecondsAfterFinished 0); nothing else may
        return None if kind == "AgentRun" else f"{kind} {name} disappeared"
    if not reconciled(body):
        return f"{kind} {name} not reconciled within {RECONCILE_SECONDS:.0f}s (status: {body.get('status')})"[
            :600
        ]
    if kind == "AgentRun" and (why := stuck_run(body)):
        return f"AgentRun {name} {why}"[:600]
    return None
