"""The kind path of `make demo`, with stand-in `docker` and `kind` commands: no Docker engine runs here.

What it shows a user: with Docker and kind on PATH the demo takes the kind path in the documented order
(build the image, create the cluster, load the image), and a step that fails names its command and still
deletes the cluster it created, so a failed demo leaves nothing running. The steps after the image is
loaded (helm install, the fleet on kind) need a real engine; `tests/unit/demo/` renders their chart values.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$DEMO_CALLS"
case "$(basename "$0") $1 $2" in
  "docker info "*) echo "27.3.1" ;;
  "docker network inspect") echo '[{"Subnet": "127.0.0.0/8", "Gateway": "127.0.0.1"}]' ;;
  "kind load docker-image") echo "ERROR: image not present in the node" >&2; exit 1 ;;
esac
exit 0
"""


def test_demo_with_docker_and_kind_takes_the_kind_path_and_deletes_the_cluster_when_a_step_fails(
    tmp_path: Path,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind"):
        script = bin_dir / name
        script.write_text(STAND_IN)
        script.chmod(0o755)
    calls = tmp_path / "calls.log"
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(REPO / "tests"),
        DEMO_CALLS=str(calls),
    )
    env.pop("AGENCY_DEMO_TARGET", None)
    done = subprocess.run(
        [sys.executable, "-m", "agency_testbed.demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "runs on a kind cluster" in done.stdout
    assert "`kind load docker-image agency-demo:local --name agency-demo` exited 1" in done.stderr
    assert "image not present in the node" in done.stderr
    made = [line.split()[:3] for line in calls.read_text().splitlines()]
    assert made == [
        ["docker", "info", "--format"],
        ["docker", "build", "-t"],
        ["kind", "create", "cluster"],
        ["kind", "load", "docker-image"],
        ["kind", "delete", "cluster"],
    ]
