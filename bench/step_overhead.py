"""Per-step overhead of the subprocess runner with a fresh process per step (warm: false).

Ours: the wall time of one trivial step through DagsterOperator.execute, in a process that has
imported Airflow (as an Airflow worker has). Floor: a fresh `python -c "import dagster; import
<the job's module>"` (target: at most 1.3 times). A second line compares against what any
out-of-process Dagster step must pay at least: that, plus creating a DagsterInstance.
"""

from __future__ import annotations

import sys
import time

from measure import SCRATCH, Row, paired_medians, print_table, run
from synthetic_job import write_job

REPEATS = 5

THROUGH_OPERATOR = """
import sys, time, types
from airflow.sdk import DAG
from dagster_airflow.operator import DagsterOperator
folder, module = sys.argv[1], sys.argv[2]
with DAG(dag_id="bench_step", schedule=None) as dag:
    task = DagsterOperator(
        task_id="step_0000", step_key="step_0000", job_name="synthetic_10",
        code_location={"python_file": f"{folder}/{module}.py", "working_directory": folder},
        storage={"name": "filesystem", "base_dir": f"{folder}/storage"},
        runner={"name": "subprocess", "warm": False},  # a fresh process: see step_server.py
    )
ti = types.SimpleNamespace(try_number=1, max_tries=0, map_index=-1)
context = {"ti": ti, "run_id": f"bench_{time.time()}"}
start = time.perf_counter()
task.execute(context)
print(time.perf_counter() - start)
"""

FLOOR = "import sys; sys.path.insert(0, sys.argv[1]); import dagster; import {module}"
INSTANCE_FLOOR = FLOOR + "; dagster.DagsterInstance.ephemeral()"


def main() -> list[Row]:
    folder = SCRATCH / "step_overhead"
    module = write_job(folder, 10).stem

    def ours() -> float:
        out = run([sys.executable, "-c", THROUGH_OPERATOR, str(folder), module]).stdout
        return float(out.strip().splitlines()[-1])

    def fresh(code: str):
        def measure() -> float:
            start = time.perf_counter()
            run([sys.executable, "-c", code.format(module=module), str(folder)])
            return time.perf_counter() - start

        return measure

    mine, floor = paired_medians(ours, fresh(FLOOR), REPEATS)
    _, instance_floor = paired_medians(lambda: mine, fresh(INSTANCE_FLOOR), REPEATS)
    return [
        Row(
            "one step through DagsterOperator.execute",
            mine,
            floor,
            "s",
            "<= 1.3",
            f'fresh python -c "import dagster; import {module}" (median of {REPEATS})',
        ),
        Row(
            "one step, against Dagster's own minimum",
            mine,
            instance_floor,
            "s",
            "",
            "the same, plus DagsterInstance.ephemeral(), which any Dagster step execution needs",
        ),
    ]


if __name__ == "__main__":
    print_table(main())
