"""The 10-step fan-out (ten independent steps) under a real scheduler: Airflow's scheduler, DAG
processor and api-server with the LocalExecutor and parallelism 4 (AirflowDeployment), the
subprocess runner with its step server, against `dagster job execute` of the same job with the
multiprocess executor at max_concurrent 4. The same DAG with `warm: false` (a fresh process per
step) is measured beside them.

A run's time is Airflow's own record of it: from queued (the REST trigger) to its end, so the
scheduler's latency is in it, as it is for a user; Dagster's is the wall time of its command.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

# The project's harness (a deployment) is a top-level folder of the repository, not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure import BIN, SCRATCH, Row, dagster_job_execute, print_table, run, wall
from synthetic_job import write_job

from dagster_airflow.step_server.protocol import running_servers, stop_servers
from harness.airflow_deployment import AirflowDeployment
from harness.servers import free_port

REPEATS = 2
STEPS = 10
PARALLELISM = 4
JOB = f"synthetic_{STEPS}"
DAGSTER_CONFIG = f"execution:\n  config:\n    multiprocess:\n      max_concurrent: {PARALLELISM}\n"


def scaffold(job_file: Path, dag_id: str, folder: Path, *options: str) -> str:
    command = [str(BIN / "dagster-airflow"), "scaffold", JOB, "-f", str(job_file)]
    storage = ["--storage-option", f"base_dir={folder / 'storage'}"]
    return run([*command, "--dag-id", dag_id, *storage, *options], cwd=folder).stdout


def run_seconds(airflow: AirflowDeployment, dag_id: str, run_id: str) -> float:
    """Trigger one run and wait for it; queued to end, as Airflow recorded it."""
    airflow.trigger(dag_id, run_id)
    state = airflow.wait_for_run(dag_id, run_id)
    _, body = airflow.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    if state != "success":
        raise RuntimeError(f"run {run_id} of {dag_id} ended {state}: {body}")
    queued, ended = (datetime.fromisoformat(body[key]) for key in ("queued_at", "end_date"))
    return (ended - queued).total_seconds()


def main() -> list[Row]:
    folder = SCRATCH / "fan_out"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    job_file = write_job(folder, STEPS, "independent")
    config = folder / "multiprocess.yml"
    config.write_text(DAGSTER_CONFIG)
    dagster_home = folder / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster_env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    runtime_dir = Path(tempfile.mkdtemp(prefix="da-fan-", dir="/tmp"))
    warm_dag, fresh_dag = f"{JOB}_warm", f"{JOB}_fresh"
    settings = {"AIRFLOW__CORE__PARALLELISM": str(PARALLELISM)}
    warm, fresh, dagster = [], [], []
    try:
        with AirflowDeployment(folder / "airflow", port=free_port(), env=settings) as airflow:
            runtime = f"runtime_dir={runtime_dir}"
            airflow.install(
                scaffold(job_file, warm_dag, folder, "--runner-option", runtime), f"{warm_dag}.py"
            )
            airflow.install(
                scaffold(job_file, fresh_dag, folder, "--runner-option", "warm=false"),
                f"{fresh_dag}.py",
            )
            airflow.wait_for_dag(warm_dag)
            airflow.wait_for_dag(fresh_dag)
            # The first run starts the server, as on a worker that already ran a step.
            first = run_seconds(airflow, warm_dag, "first")
            for i in range(REPEATS):
                warm.append(run_seconds(airflow, warm_dag, f"warm_{i}"))
                fresh.append(run_seconds(airflow, fresh_dag, f"fresh_{i}"))
                dagster.append(
                    wall(lambda: dagster_job_execute(job_file, JOB, dagster_env, folder, config))
                )
        servers = running_servers(runtime_dir)
        forked = sum(server.status().get("steps", 0) for server in servers)
        if len(servers) != 1 or forked != STEPS * (1 + REPEATS):
            raise RuntimeError(
                f"expected one step server that forked {STEPS * (1 + REPEATS)} steps, found "
                f"{len(servers)} that forked {forked}; see {runtime_dir}/*.log"
            )
    finally:
        stop_servers(runtime_dir)
        shutil.rmtree(runtime_dir, ignore_errors=True)
    ours, theirs = statistics.median(warm), statistics.median(dagster)
    shape = f"{STEPS}-step fan-out, LocalExecutor x{PARALLELISM}"
    baseline = (
        f"dagster job execute, multiprocess, max_concurrent {PARALLELISM} (median of {REPEATS})"
    )
    return [
        Row(
            f"{shape}, warm",
            ours,
            theirs,
            "s",
            "",
            baseline,
            f"one server forked all {forked} steps; the first run, which started it: {first:.1f} s",
        ),
        Row(f"{shape}, warm: false", statistics.median(fresh), theirs, "s", "", baseline),
        Row(
            f"{shape}, warm against warm: false",
            ours,
            statistics.median(fresh),
            "s",
            "",
            "the same DAG with a fresh process per step",
        ),
    ]


if __name__ == "__main__":
    print_table(main())
