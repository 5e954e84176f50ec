"""Every command in the README is run by a test, so the README cannot promise a command nobody runs.

`README_COMMANDS` maps each command of the README's fenced `sh` blocks to the tests that run it. The
tests here fail when the README gains a command the table does not name, when the table names a command
the README dropped, or when a test the table names no longer exists (checked by real collection).

The tour is run as written, command after command, in one bash shell, on a control plane of its own. The
shell is set up the way the README assumes a reader's is, and in no other way: `.venv/bin` on PATH (the
README says so for `kubectl agency`), and, because this host is shared with other tests, `TESTBED_DIR`
(the Makefile's variable for where `make testbed` keeps its state) and the operator's ports and run
folder (`AGENCY_METRICS_PORT`, `AGENCY_LIVENESS_ENDPOINT`, `AGENCY_LOCAL_WORKDIR`) pointed at free ones.
No model provider is reachable here, so the README's run of the anthropic model ends without success and
the test asserts what the reader then sees. The rest of the tour (approve, trace, usage) is then run, as
written, against a run of the same agent pointed at the scripted model (as `make demo` points it).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agency_runtime.kubectl.errors import EXIT_RUN_FAILED, EXIT_WAITING
from agency_testbed import demo
from agency_testbed.cluster import Testbed
from agency_testbed.llm import ScriptedLLM
from agency_testbed.procs import free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
HERE = "tests/e2e/test_readme_commands.py"
DEMO_TEST = (
    "tests/e2e/test_demo.py::"
    "test_demo_runs_the_cold_chain_agent_through_approval_to_success_and_prints_its_trace"
)
TOUR_TEST = f"{HERE}::test_readme_tour_runs_as_written_and_its_run_is_approved_traced_and_counted"
TOUR_HEADING = "## A tour on your own control plane"

#: Each README command, and the tests that run it.
README_COMMANDS: dict[str, list[str]] = {
    "make demo": [DEMO_TEST, f"{HERE}::test_make_demo_runs_the_module_the_demo_test_runs"],
    "make test": [f"{HERE}::test_ci_runs_exactly_make_test_which_lints_then_runs_every_test"],
    "make testbed": [TOUR_TEST],
    'eval "$(make -s testbed)"': [TOUR_TEST],
    "kubectl apply --server-side -f crds/": [TOUR_TEST],
    "kubectl create namespace cold-chain": [TOUR_TEST],
    (
        "AGENCY_EXECUTOR=local .venv/bin/python -m agency_operator --namespace cold-chain"
        ' > "${TMPDIR:-/tmp}/agency-operator.log" 2>&1 &'
    ): [TOUR_TEST],
    "kubectl apply -n cold-chain -f examples/cold-chain/policy.yaml -f examples/cold-chain/agent.yaml": [
        TOUR_TEST
    ],
    "kubectl get agents -n cold-chain": [TOUR_TEST],
    (
        "kubectl create secret generic model-credentials -n cold-chain"
        " --from-literal=anthropic-api-key=... --from-literal=openai-api-key=..."
    ): [TOUR_TEST],
    'kubectl agency run cold-chain-monitor -n cold-chain --input "Container MSKU-4471 reported 9.3 °C"': [
        TOUR_TEST
    ],
    'kubectl agency approve <run> -n cold-chain --reason "depot confirmed"': [TOUR_TEST],
    "kubectl agency trace <run> -n cold-chain --url http://localhost:16686": [TOUR_TEST],
    "kubectl agency usage -A": [TOUR_TEST],
    "make testbed-down": [TOUR_TEST],
}


# ----- reading the README ---------------------------------------------------------------------------------
def sh_blocks(markdown: str) -> list[str]:
    """The bodies of the fenced code blocks tagged `sh`, in order."""
    return re.findall(r"^```sh\n(.*?)^```", markdown, re.M | re.S)


def commands(block: str) -> list[str]:
    """The commands of a shell block: one a line (backslash continuations joined), comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    found = []
    for line in joined.splitlines():
        command = re.sub(r"(^|\s+)#\s.*$", "", line).strip()
        if command:
            found.append(command)
    return found


def readme_commands(markdown: str) -> list[str]:
    return [c for block in sh_blocks(markdown) for c in commands(block)]


def section(markdown: str, heading: str) -> str:
    """The text under `heading`, up to the next heading of the same level."""
    start = markdown.index(heading)
    end = markdown.find("\n## ", start + len(heading))
    return markdown[start : end if end >= 0 else len(markdown)]


def collected(node_ids: set[str]) -> set[str]:
    """Which of `node_ids` pytest collects (a real collection of their files, in a subprocess)."""
    files = sorted({n.split("::")[0] for n in node_ids if (REPO / n.split("::")[0]).exists()})
    if not files:
        return set()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return {line.strip() for line in proc.stdout.splitlines()} & node_ids


def test_every_readme_command_is_run_by_a_test() -> None:
    found = readme_commands(README.read_text())
    assert found, "the README has no fenced sh blocks: the parser no longer matches it"
    untested = [c for c in found if c not in README_COMMANDS]
    assert not untested, f"README commands no test runs (add them to README_COMMANDS): {untested}"
    stale = [c for c in README_COMMANDS if c not in found]
    assert not stale, f"README_COMMANDS names commands the README no longer has: {stale}"


def test_every_test_named_for_a_readme_command_exists() -> None:
    named = {test for tests in README_COMMANDS.values() for test in tests}
    missing = named - collected(named)
    assert not missing, f"README_COMMANDS names tests pytest does not collect: {sorted(missing)}"


def test_ci_runs_exactly_make_test_which_lints_then_runs_every_test() -> None:
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run is not executable"
    steps = [
        line.strip() for line in ci.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert steps[-1] == "exec make test", steps
    plan = subprocess.run(
        ["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    # `make -n` shows the recursive lint step and then the suite, in that order.
    assert re.search(r"lint.*\n(.*\n)*.*\.venv/bin/pytest\s*$", plan, re.M), plan


def test_make_demo_runs_the_module_the_demo_test_runs() -> None:
    plan = subprocess.run(
        ["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert re.search(r"^\.venv/bin/python -m agency_testbed\.demo\s*$", plan, re.M), plan


# ----- the tour, in a shell --------------------------------------------------------------------------------
@dataclass
class Answer:
    command: str
    code: int
    output: str


class Shell:
    """One bash process fed commands one at a time, like a terminal: state (exports, `eval`, background
    jobs) carries from one command to the next. Each command's output (stdout and stderr) and exit code
    come back; a command that does not finish in time fails the test with what it printed so far."""

    MARK = "__agency_readme_done__"

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, command: str, timeout: float) -> Answer:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\necho {self.MARK} $?\n")
        self.proc.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"`{command}` did not finish in {timeout:.0f}s; it printed:\n{''.join(output)}")
            if line.startswith(self.MARK):
                return Answer(command, int(line.split()[1]), "".join(output))
            output.append(line)

    def close(self) -> None:
        """End the shell and everything it started in the background (its process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # The reader ends when every writer of the pipe is gone; then the pipes can be closed.
        self.reader.join(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()


@pytest.fixture
def tour_shell(tmp_path: Path) -> Iterator[Shell]:
    """A reader's shell in the repository; at the end the shell, its operator and its testbed are stopped
    (`make testbed-down` is a tour command, but a failing test must not leave a control plane behind)."""
    folder = tmp_path / "testbed"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        TESTBED_DIR=str(folder),
        AGENCY_METRICS_PORT=str(free_port()),
        AGENCY_LIVENESS_ENDPOINT=f"http://127.0.0.1:{free_port()}/healthz",
        AGENCY_LOCAL_WORKDIR=str(tmp_path / "runs"),
        TMPDIR=str(tmp_path),  # the operator's log the tour writes goes here, not into the machine's /tmp
    )
    shell = Shell(env)
    try:
        yield shell
    finally:
        shell.close()
        subprocess.run(
            [sys.executable, "-m", "agency_testbed", "down", "--dir", str(folder)],
            cwd=REPO,
            env=dict(env, PYTHONPATH=str(REPO / "tests")),
            capture_output=True,
            timeout=60,
            check=False,
        )


def run_phase(testbed: Testbed, name: str) -> str:
    out = testbed.kubectl("get", "agentrun", name, "-n", "cold-chain", "-o", "json", check=False).stdout
    return str((json.loads(out or "{}").get("status") or {}).get("phase", ""))


def test_readme_tour_runs_as_written_and_its_run_is_approved_traced_and_counted(
    tour_shell: Shell, tmp_path: Path
) -> None:
    tour = readme_commands(section(README.read_text(), TOUR_HEADING))
    run_cmd = next(c for c in tour if c.startswith("kubectl agency run "))
    before_run, after_run = tour[: tour.index(run_cmd)], tour[tour.index(run_cmd) + 1 :]

    answers = {c: tour_shell.run(c, timeout=600 if c.startswith("make testbed") else 60) for c in before_run}
    failed = {c: a.output for c, a in answers.items() if a.code != 0}
    assert not failed, f"tour commands that failed: {failed}"
    assert "export KUBECONFIG=" in answers["make testbed"].output
    assert "cold-chain-monitor" in answers["kubectl get agents -n cold-chain"].output
    testbed = Testbed.attach(tmp_path / "testbed")
    assert testbed.running()

    # No provider is reachable from here: the README's run of the anthropic model ends, and says why.
    first = tour_shell.run(run_cmd, timeout=180)
    assert first.code == EXIT_RUN_FAILED, first.output
    assert re.search(
        r"agentrun\.agency\.dev/cold-chain-monitor-\S+ created in namespace cold-chain", first.output
    )
    assert "Failed: ModelFailed: every model failed: anthropic/claude-sonnet-4-5" in first.output, (
        first.output
    )

    # The same agent pointed at the scripted model, as `make demo` does; then the README's commands again.
    services = demo.ColdChainServices()
    threading.Thread(target=services.serve_forever, daemon=True).start()
    try:
        with ScriptedLLM() as llm:
            prove_the_rest_of_the_tour(tour_shell, testbed, llm, services, run_cmd, after_run)
    finally:
        services.shutdown()
        services.server_close()
    assert not testbed.running(), "`make testbed-down` left the control plane running"


def prove_the_rest_of_the_tour(
    tour_shell: Shell,
    testbed: Testbed,
    llm: ScriptedLLM,
    services: demo.ColdChainServices,
    run_cmd: str,
    after_run: list[str],
) -> None:
    """The README's run, approve, trace and usage commands, as written, with the agent on the scripted
    model: the run waits for approval of the dispatch, succeeds once approved, shows its trace and usage."""
    demo.script_model(llm)
    objects = demo.adapt(demo.load_examples(), llm.base_url, services, chart=False)
    testbed.kubectl(
        "apply",
        "-n",
        "cold-chain",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )
    second = tour_shell.run(run_cmd, timeout=180)
    assert second.code == EXIT_WAITING, second.output
    name = re.search(r"agentrun\.agency\.dev/(\S+) created", second.output).group(1)  # type: ignore[union-attr]
    assert "waits for approval" in second.output, second.output
    assert "dispatch_technician" in second.output, second.output

    for written in after_run:
        command = written.replace("<run>", name)
        answer = tour_shell.run(command, timeout=120)
        assert answer.code == 0, f"`{command}` exited {answer.code}:\n{answer.output}"
        if command.startswith("kubectl agency approve"):
            assert "pproved" in answer.output, answer.output
            deadline = time.monotonic() + 120
            while run_phase(testbed, name) != "Succeeded":
                assert time.monotonic() < deadline, f"run {name} is {run_phase(testbed, name)} after approval"
                assert run_phase(testbed, name) != "Failed", testbed.kubectl(
                    "get", "agentrun", name, "-n", "cold-chain", "-o", "yaml"
                ).stdout
                time.sleep(0.5)
            assert services.calls.get("dispatches") == 1
        elif command.startswith("kubectl agency trace"):
            # (The operator the tour started with `&` logs into the same terminal: look for the lines.)
            trace_ids = re.findall(r"^([0-9a-f]{32})$", answer.output, re.M)
            assert len(trace_ids) == 1, answer.output
            link = rf"^http://localhost:16686/\S*{trace_ids[0]}$"
            assert re.search(link, answer.output, re.M), answer.output
        elif command.startswith("kubectl agency usage"):
            done = json.loads(
                testbed.kubectl("get", "agentrun", name, "-n", "cold-chain", "-o", "json").stdout
            )
            tokens = f"{done['status']['usage']['inputTokens']:,}"
            # Two runs of the agent: the failed one (no tokens) and the approved one.
            row = rf"^cold-chain\s+cold-chain-monitor\s+2\s+{re.escape(tokens)}\s"
            assert re.search(row, answer.output, re.M), answer.output
