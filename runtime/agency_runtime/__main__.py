"""`python -m agency_runtime`: the process the operator starts for one run.

litellm's import takes seconds; it starts in a background thread first, so that the I/O of start-up
(reading the run file and the journal) overlaps it, with the cyclic garbage collector off until the first
model call is over (`agency_runtime.llm.pause_gc`). Before any model class is made, pydantic is told to
build each validator on first use rather than when its class is defined (litellm and openai define ~2,400
models at import, a run uses a handful), and Agency's own models skip reading their field docs from the
source (only the CRDs need them): together a fifth of the start-up. Once the result is reported (journal
fsync'd, spans flushed, stdout flushed) the process leaves with `os._exit`: tearing down litellm's
modules would add about a second to every run for nothing.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    import pydantic

    pydantic.BaseModel.model_config["defer_build"] = True
    import agency_runtime

    agency_runtime.FIELD_DOCS = False  # read when agency_runtime.api makes its models, just below

    from agency_runtime.llm import pause_gc, prewarm_litellm

    pause_gc()
    prewarm_litellm()
    from agency_runtime.process import main

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
