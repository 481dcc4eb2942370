"""End to end: `airflow dags test` of a 10-step job (subprocess runner with a fresh process per
step, filesystem storage) against `dagster job execute` of the same job with Dagster's own
multiprocess executor."""

from __future__ import annotations

import shutil

from measure import (
    SCRATCH,
    Row,
    airflow_with_job,
    dagster_job_execute,
    paired_medians,
    print_table,
    wall,
)
from synthetic_job import write_job

REPEATS = 2
STEPS = 10
SHAPE = "chain"


def main() -> list[Row]:
    folder = SCRATCH / "end_to_end"
    shutil.rmtree(folder, ignore_errors=True)
    job_file = write_job(folder, STEPS, SHAPE)
    # warm=false: a fresh process per step; bench/step_server.py measures warm steps.
    home, dagster_env = airflow_with_job(folder, job_file, f"synthetic_{STEPS}", "warm=false")

    def airflow() -> None:
        result = home.dags_test(f"synthetic_{STEPS}")
        if not result.succeeded:
            raise RuntimeError(result.output[-3000:])

    def dagster() -> None:
        dagster_job_execute(job_file, f"synthetic_{STEPS}", dagster_env, folder)

    ours, theirs = paired_medians(lambda: wall(airflow), lambda: wall(dagster), REPEATS)
    return [
        Row(
            f"airflow dags test, {STEPS}-step {SHAPE}",
            ours,
            theirs,
            "s",
            "<= 1.0",
            f"dagster job execute, multiprocess executor (median of {REPEATS})",
        )
    ]


if __name__ == "__main__":
    print_table(main())
