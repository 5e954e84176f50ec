"""`python -m agency_runtime.kubectl`: the same as the `kubectl-agency` console script."""

import sys

from agency_runtime.kubectl.main import main

sys.exit(main())
