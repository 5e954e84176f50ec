"""`python -m agency_runtime`: the process the operator starts for one run.

litellm's import takes seconds; it starts in a background thread first, so that the I/O of start-up
(reading the run file and the journal) overlaps it, with the cyclic garbage collector off until the first
model call is over (`agency_runtime.llm.pause_gc`). Once the result is reported (journal fsync'd, spans
flushed, stdout flushed) the process leaves with `os._exit`: tearing down litellm's modules would add
about a second to every run for nothing.
"""

from __future__ import annotations

import os
import sys

from agency_runtime.llm import pause_gc, prewarm_litellm

if __name__ == "__main__":
    pause_gc()
    prewarm_litellm()
    from agency_runtime.process import main

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
