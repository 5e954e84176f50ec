"""A stand-in for `python -m agency_runtime` that the operator's tests start through the local executor.

It reads the same contract the real runtime reads (the environment and the run file), records the
environment it was given (`env.json` in its working folder, for tests to assert) and its start
(a line in `starts.log`), then behaves as the
run's input says — a JSON object:

- `{"wait": true}`: wait until a file named `release` appears in the working folder;
- `{"post": "http://..."}`: first POST the run's uid to that URL, once per process and without an
  idempotency key, so a second process started for a run shows as a second side effect;
- `{"phase": "Succeeded", "steps": 2, "usage": {...}, "result": "..."}`: the final result to report
  (`judge` and `reflection` are passed on as given);
- `{"exit": 3}`: exit with that code without reporting a result;
- `{"phase": "WaitingForApproval", "proposal": {"proposalId": "p1"}, "afterApproval": {...}}`: stop waiting
  for a decision; a later process of the same run behaves as `afterApproval` says.

The final result goes, like the real runtime's, to stdout and to AGENCY_RESULT_FILE.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path


def main() -> int:
    folder = Path.cwd()
    with (folder / "starts.log").open("a") as starts:  # one line per process started for the run
        starts.write(f"{os.getpid()}\n")
    (folder / "env.json").write_text(json.dumps(dict(os.environ), sort_keys=True))
    run = json.loads(Path(os.environ["AGENCY_RUN_FILE"]).read_text())
    ask = json.loads(run["input"] or "{}")
    if len((folder / "starts.log").read_text().split()) > 1 and "afterApproval" in ask:
        ask = ask["afterApproval"]
    if ask.get("post"):
        uid = os.environ["AGENCY_RUN_UID"].encode()
        request = urllib.request.Request(ask["post"], data=uid, method="POST")  # noqa: S310 - the test's URL
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            answer.read()
    if ask.get("wait"):
        deadline = time.monotonic() + 300
        while not (folder / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    if "exit" in ask:
        return int(ask["exit"])
    result = {
        "phase": ask.get("phase", "Succeeded"),
        "reason": ask.get("reason", "Completed"),
        "message": ask.get("message", "done"),
        "result": ask.get("result", "ok"),
        "steps": ask.get("steps", 1),
        "usage": ask.get("usage", {"inputTokens": 10, "outputTokens": 5, "costUSD": 0.001}),
        "traceId": ask.get("traceId", "0123456789abcdef0123456789abcdef"),
    }
    for passed_on in ("proposal", "judge", "reflection"):
        if passed_on in ask:
            result[passed_on] = ask[passed_on]
    line = json.dumps(result, sort_keys=True)
    print(line, flush=True)
    Path(os.environ["AGENCY_RESULT_FILE"]).write_text(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
