"""What the team's Dagster instance costs a step (docs/dagster-instance.md).

Ours: one step of the synthetic job through `dagster-airflow execute-step` with ``dagster_home``
set, its instance on a local PostgreSQL server (Debian's, started here on loopback): the step
opens the instance, finds or creates the shared run, and writes every event to its event log.
Baseline: the same step against an ephemeral instance (the default). The two are measured
alternately; each step of ours runs in a new DAG run, so each creates its run, as the first
step of a DAG run does. Needs the postgresql package (make system-packages); not in MODULES.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

from measure import BIN, SCRATCH, Row, paired_medians, print_table, run
from synthetic_job import write_job

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_airflow.model import (
    REQUEST_ENV_VAR,
    CodeLocation,
    StepRequest,
    StorageSpec,
    TaskRef,
)
from harness.postgres import PostgresServer, dagster_yaml

REPEATS = 5


def main() -> list[Row]:
    folder = SCRATCH / "dagster_instance"
    module = write_job(folder, 10)
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)

    def step(dagster_home: str | None):
        def measure() -> float:
            airflow_run = f"bench_{uuid.uuid4()}"
            request = StepRequest(
                code_location=CodeLocation(python_file=str(module)),
                job_name="synthetic_10",
                step_key="step_0000",
                run_id=str(uuid.uuid4()),
                storage=StorageSpec("filesystem", {"base_dir": str(folder / "storage")}),
                task=TaskRef("bench", "step_0000", airflow_run),
                dagster_home=dagster_home,
            )
            env = {**os.environ, REQUEST_ENV_VAR: request.to_json()}
            start = time.perf_counter()
            run([str(BIN / "dagster-airflow"), "execute-step"], env=env)
            return time.perf_counter() - start

        return measure

    with PostgresServer() as server:
        (home / "dagster.yaml").write_text(dagster_yaml(server))
        step(str(home))()  # the instance's schema is made once, by the first step ever
        ours, baseline = paired_medians(step(str(home)), step(None), REPEATS)
    return [
        Row(
            "one step, events to the team's instance",
            ours,
            baseline,
            "s",
            "",
            f"the same step, ephemeral instance (median of {REPEATS})",
        )
    ]


if __name__ == "__main__":
    print_table(main())
