"""A second process for fencing tests: opens a run's Kubernetes journal and appends until it is fenced.

python journal_writer.py <server> <ca file> <token file> <namespace> <run> <uid>

Prints `opened <epoch>` once it holds an epoch, then `appended <seq>` per record; exits 3 when a newer
process took over (the runtime's exit code for Fenced), 1 if it was never fenced within a minute.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agency_runtime.journal import Fenced, Kind
from agency_runtime.journal_kube import KubeJournal
from agency_runtime.kube import KubeClient, RunObject

EXIT_FENCED = 3


def main(argv: list[str]) -> int:
    server, ca, token, namespace, run, uid = argv
    client = KubeClient.connect(server, token_file=Path(token), ca_file=Path(ca))
    journal = KubeJournal(client, RunObject(namespace, run, uid))
    journal.open()
    print(f"opened {journal.epoch}", flush=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            record = journal.append(Kind.EVENT, "writer", {"pid": "older"})
            print(f"appended {record.seq}", flush=True)
            time.sleep(0.05)
    except Fenced as err:
        print(f"fenced: {err}", flush=True)
        return EXIT_FENCED
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
