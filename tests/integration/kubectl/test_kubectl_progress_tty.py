"""On a terminal, `kubectl agency run` keeps its progress on one line, rewritten as the run moves."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from agency_testbed.cluster import Kubectl, Testbed
from agency_testbed.fixtures_operator import agent, apply
from integration.kubectl.kubectl_plugin import Plugin, set_status


class Terminal:
    """The reading side of a pseudo-terminal the plugin writes its progress to."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = b""

    def read_until(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} never appeared on the terminal; it shows {self.seen!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:  # the plugin exited and closed its side
                    break
        return self.seen.decode()


def test_progress_line_is_rewritten_in_place_on_a_terminal_and_the_result_goes_to_stdout(
    plugin: Plugin, kubectl: Kubectl, testbed: Testbed, namespace: str
) -> None:
    apply(kubectl, agent(namespace))
    reader, writer = pty.openpty()
    with subprocess.Popen(
        plugin.argv("run", "helper", "--input", "x", "--name", "live", "-n", namespace),
        env=plugin.env(),
        stdout=subprocess.PIPE,
        stderr=writer,
        text=True,
    ) as proc:
        os.close(writer)
        terminal = Terminal(reader)
        terminal.read_until("Pending  step 0")
        usage = {"inputTokens": 300, "outputTokens": 20, "totalTokens": 320, "costUSD": 0.002}
        set_status(testbed, namespace, "live", {"phase": "Running", "stepCount": 1, "usage": usage})
        terminal.read_until("Running  step 1")
        set_status(testbed, namespace, "live", {"phase": "Succeeded", "stepCount": 2, "result": "sorted"})
        stdout, _ = proc.communicate(timeout=30)
        shown = terminal.read_until("Succeeded  step 2")
    os.close(reader)

    assert proc.returncode == 0
    assert stdout == "sorted\n"
    progress = shown[shown.index("\rPending") :]
    assert progress.startswith(
        "\rPending  step 0  tokens 0 (0 in / 0 out)  cost $0\x1b[K"
        "\rRunning  step 1  tokens 320 (300 in / 20 out)  cost $0.002\x1b[K"
        "\rSucceeded  step 2"
    ), "one line, rewritten: no new line between states"
