"""A Dagster sensor as a sensor DAG, run by Airflow: each tick triggers the job's DAG once per
run request, with its run config, partition and tags, keeps the cursor in an Airflow Variable,
skips with Dagster's skip reason, and never starts a run key twice (issue 25, point 3)."""

from __future__ import annotations

import json
import sqlite3

from dagster_airflow.sensor_tick import cursor_variable, run_id_for
from tests.conftest import JOBS, run_cli

# The sensors part of the project alone, as its own code location: no DAG of other parts.
PROJECT = JOBS / "project" / "sensors.py"
SENSOR_DAG = "inbox_job__inbox_sensor"


def dag_runs(home, dag_id: str) -> dict[str, dict]:
    with sqlite3.connect(home.path / "airflow.db") as db:
        rows = db.execute("SELECT run_id, conf FROM dag_run WHERE dag_id = ?", (dag_id,))
        return {run_id: json.loads(conf) if conf else {} for run_id, conf in rows.fetchall()}


def test_a_sensor_dag_triggers_its_jobs_dag_once_per_run_key(airflow_home, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("east-1.csv", "west-1.csv"):
        (inbox / name).write_text("")
    done = run_cli(
        "scaffold", "--all", "-f", str(PROJECT), "--install", "--force",
        "--dags-folder", str(airflow_home.dags_folder),
        "--runner-option", f"env={{PROJECT_INBOX: {inbox}}}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The run status sensor is said, not dropped.
    assert "sensor 'inbox_failures' is not mapped: it is a run status sensor" in done.stderr
    airflow_home.migrate()
    reserialized = airflow_home.airflow("dags", "reserialize")
    assert reserialized.returncode == 0, reserialized.stderr

    # Tick 1: one run of the job's DAG per file, as Dagster's RunRequests say.
    first = airflow_home.dags_test(SENSOR_DAG)

    assert first.succeeded, first.output
    runs = dag_runs(airflow_home, "inbox_job")
    east, west = run_id_for("inbox_sensor", "east-1.csv"), run_id_for("inbox_sensor", "west-1.csv")
    assert {east, west} <= set(runs)
    assert runs[west] == {
        "ops": {"read_inbox_file": {"config": {"file": "west-1.csv"}}},
        "partition": "west",
        "dagster_tags": {
            "inbox/file": "west-1.csv",
            "dagster/partition": "west",
            "dagster/partition_set": "inbox_job_partition_set",
            "dagster/sensor_name": "inbox_sensor",
        },
    }
    assert first.xcoms["evaluate_sensor"]["triggered"] == [east, west]
    cursor = airflow_home.airflow("variables", "get", cursor_variable(SENSOR_DAG))
    assert cursor.stdout.strip().splitlines()[-1] == "west-1.csv"

    # Tick 2: nothing after the cursor: the task skips with the sensor's reason.
    second = airflow_home.dags_test(SENSOR_DAG)

    assert second.states == {"evaluate_sensor": "skipped"}, second.output
    assert "no file after 'west-1.csv'" in second.output

    # Tick 3, the cursor reset: the same run keys again, and no second run of either.
    airflow_home.airflow("variables", "delete", cursor_variable(SENSOR_DAG))
    third = airflow_home.dags_test(SENSOR_DAG)

    assert third.succeeded, third.output
    assert third.xcoms["evaluate_sensor"]["triggered"] == []
    assert third.xcoms["evaluate_sensor"]["already_requested"] == [east, west]
    assert set(dag_runs(airflow_home, "inbox_job")) == set(runs)
