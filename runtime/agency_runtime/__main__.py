"""`python -m agency_runtime`: the process the operator starts for one run.

litellm's import takes seconds, so it starts in a background thread before anything else; reading the
run file, opening the journal and setting up tracing overlap it.
"""

from __future__ import annotations

import sys

from agency_runtime.llm import prewarm_litellm

if __name__ == "__main__":
    prewarm_litellm()
    from agency_runtime.process import main

    sys.exit(main())
