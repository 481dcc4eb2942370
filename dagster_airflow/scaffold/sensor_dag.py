"""SensorPlan + settings -> the text of a sensor DAG file: one task, on the sensor's interval,
that evaluates a tick on the Dagster side and triggers its job's DAG (see task/sensor.py).

Like a job's DAG file, it holds only checked literals and imports `airflow.sdk` and
`dagster_airflow` only.
"""

from __future__ import annotations

import datetime

from dagster_airflow.job.sensors import SensorPlan
from dagster_airflow.model import CodeLocation, RunnerSpec
from dagster_airflow.scaffold.dag_check import check_dag_text
from dagster_airflow.scaffold.dag_literals import check_writable
from dagster_airflow.scaffold.dag_literals import literal as _literal
from dagster_airflow.scaffold.install import check_dag_id
from dagster_airflow.sensor_tick import SENSOR_TASK_ID, cursor_variable


def sensor_dag_id(plan: SensorPlan, job_dags: dict[str, str]) -> str:
    """``{the DAG of its first job}__{sensor}``: beside its job's DAG in Airflow's list."""
    return check_dag_id(f"{job_dags[plan.jobs[0]]}__{plan.name}")


def _docstring(plan: SensorPlan, dag_id: str) -> str:
    return f"""Airflow DAG for a Dagster sensor, scaffolded by dagster-airflow.

Each run of this DAG is one tick of the sensor SENSOR_NAME, every
{plan.minimum_interval_seconds} seconds (its minimum_interval_seconds). Its one task evaluates
the sensor on the Dagster side with the sensor's cursor, which the Airflow Variable
{cursor_variable(dag_id)!r}
keeps between ticks (delete it to reset the cursor), and triggers the DAG of the job (JOB_DAGS)
once per run request, with the request's run config, partition and tags. A run key gives the DAG
run's id, so a run key used before starts no second run, as in Dagster. A SkipReason skips the
task with its reason.
"""


def render_sensor_dag(
    plan: SensorPlan,
    location: CodeLocation,
    runner: RunnerSpec,
    job_dags: dict[str, str],
    command: str,
    today: datetime.date | None = None,
) -> str:
    """The sensor DAG file's text; ``job_dags``: each job's DAG id."""
    today = today or datetime.date.today()
    dag_id = sensor_dag_id(plan, job_dags)
    jobs = {job: job_dags[job] for job in plan.jobs}
    # The tick runs with the subprocess runner's settings (python, working_dir, env).
    runner = runner if runner.name == "subprocess" else RunnerSpec("subprocess")
    for what, value in (
        (f"the {runner.name} runner's options", runner.options),
        ("the code location", location.to_dict()),
    ):
        check_writable(value, what)
    description = f"Dagster sensor {plan.name} of job {plan.jobs[0]}"
    docstring = _docstring(plan, dag_id)
    text = f'''"""{docstring}"""

import datetime

from airflow.sdk import DAG

from dagster_airflow import DagsterSensorOperator

# The command that wrote this file: run it again when the sensor or its jobs change.
SCAFFOLD_COMMAND = {_literal(command)}

# The Dagster sensor, where it is defined, and the DAG of each job it requests runs of.
SENSOR_NAME = {_literal(plan.name)}
CODE_LOCATION = {_literal(location.to_dict(), 0, 16)}
JOB_DAGS = {_literal(jobs, 0, 11)}

DEFAULT_ARGS = {{
    # Where the sensor is evaluated: the subprocess runner's python, working_dir and env.
    "runner": {_literal(runner.to_dict(), 4, 14)},
    "owner": "airflow",
}}

with DAG(
    dag_id={_literal(dag_id)},
    description={_literal(description)},
    schedule=datetime.timedelta(seconds={plan.minimum_interval_seconds}),
    start_date=datetime.datetime({today.year}, {today.month}, {today.day}, tzinfo=datetime.UTC),
    catchup=False,
    max_active_runs=1,
    # Dagster's default status of the sensor: {"RUNNING" if plan.running else "STOPPED"}.
    is_paused_upon_creation={not plan.running},
    tags=["dagster", "dagster-sensor"],
    default_args=DEFAULT_ARGS,
) as dag:
    DagsterSensorOperator(
        task_id={_literal(SENSOR_TASK_ID)},
        sensor_name=SENSOR_NAME,
        code_location=CODE_LOCATION,
        job_dags=JOB_DAGS,
    )
'''
    expected = {
        ("DAG", "dag_id"): dag_id,
        ("DAG", "description"): description,
        ("SCAFFOLD_COMMAND",): command,
        ("SENSOR_NAME",): plan.name,
        ("CODE_LOCATION",): location.to_dict(),
        ("JOB_DAGS",): jobs,
        ("DEFAULT_ARGS", "runner"): runner.to_dict(),
        ("DAG", "is_paused_upon_creation"): not plan.running,
    }
    check_dag_text(text, plan.jobs[0], expected, {SENSOR_TASK_ID: SENSOR_TASK_ID}, docstring)
    return text
