"""The Kubernetes journal keeps a run in ConfigMaps the run owns, with the file journal's guarantees:
records read back in order, a newer process fences an older one, a resumed run repeats nothing."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agency_runtime.api.common import RunPhase
from agency_runtime.journal import Fenced, Journal, JsonDict, Kind, Record
from agency_runtime.journal_file import FileJournal
from agency_runtime.journal_kube import MAX_RECORD_BYTES, JournalFull, KubeJournal, chunk_name, head_name
from agency_runtime.loop import run_agent
from agency_testbed.cluster import Testbed
from agency_testbed.llm import ScriptedLLM
from agency_testbed.llm_script import call, reply
from integration.runtime.run_identity import RunIdentity
from unit.runtime.runtime_endpoint import CountingEndpoint
from unit.runtime.runtime_support import Crash, Runner, agent, http_tool

WRITER = Path(__file__).with_name("journal_writer.py")
JournalFactory = Callable[[], Journal]


@pytest.fixture(params=["file", "kubernetes"])
def journals(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalFactory]:
    """Opens new journals of one run (each is 'a new process'), on either backend."""
    opened: list[Journal] = []

    def make() -> Journal:
        journal: Journal
        if request.param == "file":
            journal = FileJournal(tmp_path / "journal")
        else:
            identity: RunIdentity = request.getfixturevalue("identity")
            journal = KubeJournal(identity.client(), identity.run, seal_bytes=2048)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


def test_of_two_processes_on_one_journal_the_older_is_fenced(journals: JournalFactory) -> None:
    older, newer = journals(), journals()
    older.open()
    older.append(Kind.EVENT, "a", {})
    records = newer.open()

    with pytest.raises(Fenced, match="newer process"):
        older.append(Kind.EVENT, "b", {})
    newer.append(Kind.EVENT, "c", {})

    assert (older.epoch, newer.epoch) == (1, 2)
    assert [r.key for r in records] == ["a"]
    assert [(r.key, r.epoch) for r in journals().open()] == [("a", 1), ("c", 2)]


def test_many_records_read_back_in_order_across_chunks(journals: JournalFactory) -> None:
    journal = journals()
    journal.open()
    for n in range(40):
        journal.append(Kind.EVENT, f"e{n}", {"text": "x" * 300, "n": n})

    again = journals().open()

    assert [(r.seq, r.key) for r in again] == [(n + 1, f"e{n}") for n in range(40)]
    assert again[-1].data == {"text": "x" * 300, "n": 39}


def test_journal_configmaps_are_owned_by_the_run_bounded_in_size_and_chunks_immutable(
    testbed: Testbed, identity: RunIdentity
) -> None:
    journal = KubeJournal(identity.client(), identity.run, seal_bytes=2048)
    journal.open()
    for n in range(30):
        journal.append(Kind.EVENT, f"e{n}", {"text": "y" * 300})

    out = testbed.kubectl(
        "get", "configmaps", "-n", identity.run.namespace, "-l", "agency.dev/run=run-1", "-o", "json"
    )
    items = {i["metadata"]["name"]: i for i in json.loads(out.stdout)["items"]}

    assert head_name("run-1") in items
    assert chunk_name("run-1", 1) in items
    for item in items.values():
        (owner,) = item["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["blockOwnerDeletion"]) == (
            "AgentRun",
            identity.run.uid,
            False,
        )
        assert len(json.dumps(item["data"])) < 4096
    assert all(items[n].get("immutable") for n in items if n != head_name("run-1"))


def test_a_record_too_large_for_a_configmap_is_refused_naming_its_size(identity: RunIdentity) -> None:
    journal = KubeJournal(identity.client(), identity.run)
    journal.open()

    with pytest.raises(JournalFull, match="over the 524288 limit"):
        journal.append(Kind.RESULT, "step-1/model", {"content": "z" * MAX_RECORD_BYTES})


def test_an_older_process_is_fenced_when_a_newer_one_opens_the_journal(
    testbed: Testbed, identity: RunIdentity
) -> None:
    run = identity.run
    argv = [
        str(identity.server),
        str(identity.ca_file),
        str(identity.token_file),
        run.namespace,
        run.name,
        run.uid,
    ]
    with subprocess.Popen(
        [sys.executable, str(WRITER), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as older:
        assert older.stdout is not None
        try:
            assert older.stdout.readline().strip() == "opened 1"
            assert older.stdout.readline().startswith("appended")
            newer = KubeJournal(identity.client(), run)
            before = newer.open()
            newer.append(Kind.EVENT, "newer", {})
            rest, errors = older.communicate(timeout=60)
        finally:
            if older.poll() is None:
                older.kill()
                older.communicate()
        code = older.returncode

    assert code == 3, rest + errors
    assert "took over this run from epoch 1" in rest
    records = KubeJournal(identity.client(), run).open()
    assert [r.key for r in records] == [r.key for r in before] + ["newer"], (
        "nothing of the older after the newer"
    )
    assert {r.epoch for r in before} == {1}


class CrashAfter(Journal):
    """Delegates to a real journal and 'dies' right after the record `kind`/`key` is durable."""

    def __init__(self, inner: Journal, kind: Kind, key: str) -> None:
        self.inner = inner
        self.crash_at = (kind, key)

    @property
    def epoch(self) -> int:
        return self.inner.epoch

    def open(self) -> list[Record]:
        return self.inner.open()

    def append(self, kind: Kind, key: str, data: JsonDict) -> Record:
        record = self.inner.append(kind, key, data)
        if (kind, key) == self.crash_at:
            raise Crash(f"crashed after {kind} {key}")
        return record


def test_a_run_resumed_from_the_kubernetes_journal_repeats_no_model_or_tool_call(
    scripted_llm: ScriptedLLM, runner: Runner, endpoint: CountingEndpoint, identity: RunIdentity
) -> None:
    scripted_llm.script(
        "kube-resume",
        [
            reply(tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/a"})]),
            reply(tool_calls=[call("http_request", {"method": "POST", "url": f"{endpoint.url}/b"})]),
            reply("both done"),
        ],
    )
    spec = agent(scripted_llm.base_url, "kube-resume", tools=[http_tool("127.0.0.1")])
    crashing = CrashAfter(KubeJournal(identity.client(), identity.run), Kind.RESULT, "step-2/model")
    with pytest.raises(Crash):
        run_agent(runner.context(spec, journal=crashing))

    ctx = runner.context(spec, journal=KubeJournal(identity.client(), identity.run))
    result = run_agent(ctx)
    ctx.telemetry.shutdown()

    assert (result.phase, result.result, result.steps) == (RunPhase.SUCCEEDED, "both done", 3)
    assert len(scripted_llm.requests("kube-resume")) == 3, "each step's model call was made exactly once"
    assert [e.split()[1] for e in endpoint.effects] == ["/a", "/b"]


def _create_config_map(identity: RunIdentity, name: str) -> httpx.Response:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}
    with httpx.Client(
        base_url=identity.server,
        verify=ssl.create_default_context(cafile=str(identity.ca_file)),
        headers={"Authorization": f"Bearer {identity.token_file.read_text()}"},
    ) as http:
        return http.post(f"/api/v1/namespaces/{identity.run.namespace}/configmaps", json=body)


def test_a_run_may_create_configmaps_only_under_its_own_journal_names(identity: RunIdentity) -> None:
    refused = _create_config_map(identity, "agency-run-other.journal-head")
    # The run file of a run named `run-1-journal-head`: a dash-separated prefix would have allowed it.
    other_runs_file = _create_config_map(identity, "agency-run-run-1-journal-head")
    allowed = _create_config_map(identity, "agency-run-run-1.journal-extra")

    assert refused.status_code == 403
    assert other_runs_file.status_code == 403
    assert (
        "run run-1 may create ConfigMaps in its namespace only for its journal: names must start with "
        "agency-run-run-1.journal-" in refused.json()["message"]
    )
    assert allowed.status_code == 201, allowed.text


def test_deleting_the_run_deletes_its_journal(testbed: Testbed, identity: RunIdentity) -> None:
    journal = KubeJournal(identity.client(), identity.run)
    journal.open()
    journal.append(Kind.EVENT, "e", {})
    ns = identity.run.namespace

    testbed.kubectl("delete", "agentrun", identity.run.name, "-n", ns, "--wait=false")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = testbed.kubectl("get", "configmap", head_name("run-1"), "-n", ns, check=False)
        if got.returncode != 0 and "NotFound" in got.stderr:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the journal ConfigMap was not garbage-collected with its AgentRun within 60s")


def test_a_chunk_left_by_a_process_that_died_while_sealing_is_taken_over_without_duplicates(
    identity: RunIdentity,
) -> None:
    died = KubeJournal(identity.client(), identity.run, seal_bytes=2048)
    died.open()
    for n in range(4):
        died.append(Kind.EVENT, f"a{n}", {"text": "x" * 300})
    client = identity.client()
    head = client.get(f"/api/v1/namespaces/{identity.run.namespace}/configmaps/{head_name('run-1')}")
    first_two = "".join(line + "\n" for line in head["data"]["records"].splitlines()[:2])
    client.create(
        f"/api/v1/namespaces/{identity.run.namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": chunk_name("run-1", 1)},
            "immutable": True,
            "data": {"records": first_two},
        },
    )

    successor = KubeJournal(identity.client(), identity.run, seal_bytes=2048)
    successor.open()
    for n in range(6):
        successor.append(Kind.EVENT, f"b{n}", {"text": "y" * 300})

    keys = [r.key for r in KubeJournal(identity.client(), identity.run).open()]
    assert keys == [f"a{n}" for n in range(4)] + [f"b{n}" for n in range(6)]
