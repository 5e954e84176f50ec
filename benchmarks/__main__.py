"""`make bench`: run every benchmark and print its table and one-line summary."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from benchmarks import fleet_scale, run_start, runtime_overhead, schedule_accuracy

BENCHMARKS = {
    "runtime-overhead": runtime_overhead.main,
    "run-start": run_start.main,
    "schedule-accuracy": schedule_accuracy.main,
    "fleet-scale": fleet_scale.main,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"\n## {name}\n", flush=True)
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
