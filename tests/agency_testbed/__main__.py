"""`python -m agency_testbed up|down|status|build`: the testbed from a shell (used by `make testbed`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agency_testbed import build
from agency_testbed.cluster import Testbed

DEFAULT_DIR = Path(".testbed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agency_testbed", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where state, logs and kubeconfig live")
    args = parser.parse_args(argv)
    folder: Path = args.dir.resolve()

    if args.command == "build":
        print(build.ensure())
        return 0
    if args.command == "up":
        try:
            existing = Testbed.attach(folder)
        except FileNotFoundError:
            existing = None
        if existing and existing.running():
            print(f"testbed already running (pids {existing.pids})", file=sys.stderr)
        else:
            if existing:
                existing.stop()
            build.ensure()
            print(f"starting the testbed in {folder} ...", file=sys.stderr)
            existing = Testbed.start(folder)
            print(f"testbed up: {existing.server} (logs in {folder / 'logs'})", file=sys.stderr)
        print(f"export KUBECONFIG={existing.kubeconfig}")
        print(f"export KUBECACHEDIR={existing.folder / 'kube-cache'}")
        print(f"export PATH={existing.bin_dir}:$PATH")
        return 0
    try:
        tb = Testbed.attach(folder)
    except FileNotFoundError:
        print("no testbed running", file=sys.stderr)
        return 0 if args.command == "down" else 1
    if args.command == "down":
        tb.stop()
        print("testbed stopped", file=sys.stderr)
        return 0
    print(f"{tb.server} {'running' if tb.running() else 'NOT running'} pids={tb.pids}")
    return 0 if tb.running() else 1


if __name__ == "__main__":
    sys.exit(main())
