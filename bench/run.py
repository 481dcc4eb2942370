"""`make bench`: every benchmark under bench/, printed as one table of ratios.

Each figure is measured side by side with its baseline in the same run: these machines are
shared and noisy, so no absolute time is a result. Run one module alone with
`python bench/<module>.py`.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import print_table

MODULES = (
    "dag_files",
    "step_overhead",
    "step_server",
    "fan_out",
    "throughput",
    "end_to_end",
    "storage",
    "memory",
    "deferral",
)


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages: how far to trust the ratios."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(names: list[str]) -> int:
    rows = []
    for name in names or MODULES:
        path = Path(__file__).with_name(f"{name}.py")
        if not path.exists():
            print(f"(bench/{name}.py is not here; skipped)")
            continue
        started = time.monotonic()
        print(f"running bench/{name}.py (load average {load_average()}) ...", flush=True)
        rows.extend(importlib.import_module(name).main())
        took = time.monotonic() - started
        print(f"  done in {took:.0f} s (load average {load_average()})", flush=True)
    print()
    print_table(rows)
    missed = [row.benchmark for row in rows if row.met is False]
    if missed:
        print(f"\nmissed targets: {', '.join(missed)} (see docs/performance.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
