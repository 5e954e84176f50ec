"""The hypothesis settings of the bad-input fuzz: bounded, reproducible, and writing nothing to the repo.

- `derandomize=True`: the same examples on every run (no seed to print: a failure reproduces as is);
- `database=None`: no example database; conftest also points hypothesis' storage at a temporary folder;
- no shrinking phase: every example is judged and counted, failures are collected, not minimised (each
  one is an API round trip and a wait on the operator);
- `AGENCY_FUZZ_EXAMPLES` scales the examples per kind (default 40, the ~3 minute budget of the folder).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

EXAMPLES = int(os.environ.get("AGENCY_FUZZ_EXAMPLES", "40"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
settings.register_profile("agency-fuzz", FUZZ)
