"""End to end: `airflow dags test` of a 10-step job (subprocess runner with a fresh process per
step, filesystem storage) against `dagster job execute` of the same job with Dagster's own
multiprocess executor."""

from __future__ import annotations

import os
import shutil

from measure import (
    BIN,
    SCRATCH,
    Row,
    dagster_job_execute,
    paired_medians,
    print_table,
    run,
    wall,
)
from synthetic_job import write_job

from dagster_airflow.testing.airflow_home import AirflowHome

REPEATS = 2
STEPS = 10
SHAPE = "chain"


def main() -> list[Row]:
    folder = SCRATCH / "end_to_end"
    shutil.rmtree(folder, ignore_errors=True)
    job_file = write_job(folder, STEPS, SHAPE)
    home = AirflowHome(folder / "airflow")
    run(
        [
            str(BIN / "dagster-airflow"),
            "scaffold",
            f"synthetic_{STEPS}",
            "-f",
            str(job_file),
            "--storage-option",
            f"base_dir={folder / 'storage'}",
            "--runner-option",
            "warm=false",  # a fresh process per step; bench/step_server.py measures warm steps
            "--install",
        ],
        env=home.env,
        cwd=folder,
    )
    home.migrate()
    dagster_home = folder / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster_env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}

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
