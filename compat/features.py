"""The checks of compat/check.py for what came after the first compat run: schedules, sensors and
the team's Dagster instance, each compared with Dagster's own evaluation of the same thing.

- schedules: a schedule function's job (two crons, a tick task) scaffolded with
  ``DagsterCronTimetable``; `airflow dags test` at a weekday tick runs with the run config
  Dagster's evaluation of that tick gives, and a Saturday's skips with Dagster's SkipReason; the
  DAG, serialized and read back from the database (which only a registered timetable survives),
  names the next ticks Dagster's schedule would.
- sensors: a sensor DAG's tick triggers one run of the job's DAG per RunRequest of Dagster's own
  evaluation of the sensor, with its run config, partition and tags, and keeps its cursor.
- team instance: the assets job's compare-kit run (compat/check.py) is scaffolded with
  ``--dagster-home`` (SQLite: `airflow dags test` runs one task at a time); its end task gives
  the Dagster run the status of Dagster's own run, and the instance's event log holds the
  materializations Dagster's own run made.

Each check returns its differences (empty when it agrees), as compat/check.py's do.
"""

from __future__ import annotations

import datetime
import json
import os
import pickle
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "jobs" / "project"
# (job, its schedule, a weekday tick that runs, a Saturday tick that skips)
SCHEDULED = (
    "daily_load",
    "weekday_loads",
    "2026-12-03T18:30:00+00:00",
    "2026-12-05T06:00:00+00:00",
)
SENSOR_DAG, SENSOR, SENSOR_JOB = "inbox_job__inbox_sensor", "inbox_sensor", "inbox_job"
END_TASK = "dagster_run_end"
# A line of `airflow dags next-execution`: one logical date, such as 2026-12-07T18:30:00+00:00.
TICK_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")
# The compare kit lists the end task as a task that stands for no step: it is none, by design.
END_TASK_LINE = f"Airflow task {END_TASK!r} stands for no Dagster step"
# The compared job that also runs with the team's Dagster instance (compat/check.py).
TEAM_INSTANCE_JOB = "asset_checks_job"


def scaffold(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster_airflow", "scaffold", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def scheduled(home, work: Path, runner_python: str) -> list[str]:
    import dagster as dg

    from dagster_airflow.job.dagster_compat import schedule_execution_time_iterator
    from dagster_airflow.model import dagster_run_id
    from dagster_airflow.storage.filesystem import FilesystemStorage
    from tests.jobs.project.schedules import daily_load, weekday_loads

    job, schedule, weekday, saturday = SCHEDULED
    storage = FilesystemStorage(base_dir=str(work / "schedules-storage"))
    done = scaffold(
        *(job, "-f", str(PROJECT / "schedules.py"), "--storage", "filesystem"),
        *("--storage-option", f"base_dir={storage.base_dir}"),
        *("--runner-option", f"python={runner_python}"),
    )
    if done.returncode != 0:
        return [f"the scaffold refused {job!r}: {done.stderr.strip()}"]
    if "DagsterCronTimetable(" not in done.stdout:
        return ["the scheduled job's DAG has no DagsterCronTimetable"]
    home.install(done.stdout, f"{job}.py")
    differences = []
    ran = home.dags_test(job, logical_date=weekday, timeout=600)
    if ran.states != {"dagster_schedule_tick": "success", "load_day": "success"}:
        return [f"the weekday tick's run: {ran.states}\n{ran.output[-2000:]}"]
    at = datetime.datetime.fromisoformat(weekday)
    with dg.build_schedule_context(scheduled_execution_time=at) as context:
        (request,) = weekday_loads.evaluate_tick(context).run_requests
    theirs = daily_load.execute_in_process(run_config=request.run_config, tags=request.tags)
    key = storage.key(dagster_run_id(job, ran.run_id), "load_day", "result")
    with storage.open_read(key) as stream:
        ours = pickle.load(stream)
    if ours != theirs.output_for_node("load_day"):
        differences.append(
            f"load_day: {ours!r} under Airflow, {theirs.output_for_node('load_day')!r}"
        )
    skipped = home.dags_test(job, logical_date=saturday, timeout=600)
    at = datetime.datetime.fromisoformat(saturday)
    with dg.build_schedule_context(scheduled_execution_time=at) as context:
        reason = weekday_loads.evaluate_tick(context).skip_message
    if skipped.states != {"dagster_schedule_tick": "skipped", "load_day": "skipped"}:
        differences.append(f"the Saturday tick's run: {skipped.states}, Dagster skips it")
    # The whole output: on Airflow 3.1 `dags test` prints the task's lines and its start and end
    # marks on different streams, so DagRunResult.task_log finds none of them.
    elif f"schedule {schedule!r} skipped: {reason}" not in skipped.output:
        differences.append(f"the Saturday tick's task log does not say Dagster's {reason!r}")
    return differences + next_ticks(home, job, weekday_loads, schedule_execution_time_iterator)


def next_ticks(home, job: str, schedule, ticks_of) -> list[str]:
    """The DAG read back from the database (the scheduler's view: a timetable no plugin
    registers does not deserialize) names the ticks Dagster's schedule would next."""
    started = time.time()
    done = home.airflow("dags", "reserialize")
    if done.returncode != 0:
        return [f"`airflow dags reserialize` failed: {done.stderr[-2000:]}"]
    done = home.airflow("dags", "next-execution", job, "-n", "3")
    # Only the dates: Airflow 3.2 on logs to standard output too, each line starting with a time.
    ours = [line.strip() for line in done.stdout.splitlines() if TICK_LINE.fullmatch(line.strip())]
    times = ticks_of(started, schedule.cron_schedule, schedule.execution_timezone or "UTC")
    theirs = [next(times).astimezone(datetime.UTC).isoformat() for _ in range(3)]
    if [datetime.datetime.fromisoformat(t).isoformat() for t in ours] != theirs:
        shown = ours or [done.stdout[-1000:] + done.stderr[-2000:]]
        return [f"the serialized DAG's next ticks are {shown}, Dagster's schedule's {theirs}"]
    return []


def sensed(home, work: Path, runner_python: str) -> list[str]:
    """A sensor DAG's tick against Dagster's own evaluation of the sensor (the sensor DAG
    triggers its job's DAG, which must be in the database: every DAG file of the home is
    serialized first)."""
    import dagster as dg

    from dagster_airflow.sensor_tick import SENSOR_TASK_ID, cursor_variable, run_id_for
    from tests.jobs.project.sensors import INBOX_ENV, defs, inbox_sensor

    inbox = work / "inbox"
    inbox.mkdir(exist_ok=True)
    for name in ("east-1.csv", "west-1.csv"):
        (inbox / name).write_text("")
    done = scaffold(
        *("--all", "-f", str(PROJECT / "sensors.py"), "--install", "--force"),
        *("--dags-folder", str(home.dags_folder)),
        *("--runner-option", f"env={{{INBOX_ENV}: {inbox}}}"),
        *("--runner-option", f"python={runner_python}"),
    )
    if done.returncode != 0:
        return [f"the scaffold refused the sensors: {done.stderr.strip()}"]
    home.migrate()
    done = home.airflow("dags", "reserialize")
    if done.returncode != 0:
        return [f"`airflow dags reserialize` failed: {done.stderr[-2000:]}"]
    tick = home.dags_test(SENSOR_DAG, timeout=600)
    if not tick.succeeded:
        return [f"the sensor DAG's tick: {tick.states}\n{tick.output[-2000:]}"]
    os.environ[INBOX_ENV] = str(inbox)
    with dg.build_sensor_context(definitions=defs) as context:
        result = inbox_sensor.evaluate_tick(context)
    expected = {
        run_id_for(SENSOR, r.run_key): {
            "ops": r.run_config["ops"],
            "partition": r.partition_key,
            "tags": r.tags,
        }
        for r in result.run_requests
    }
    with sqlite3.connect(home.path / "airflow.db") as db:
        rows = db.execute("SELECT run_id, conf FROM dag_run WHERE dag_id = ?", (SENSOR_JOB,))
        runs = {run_id: json.loads(conf) if conf else {} for run_id, conf in rows.fetchall()}
    differences = []
    if set(runs) != set(expected):
        differences.append(f"runs of {SENSOR_JOB!r}: {sorted(runs)}, Dagster's {sorted(expected)}")
    for run_id in set(runs) & set(expected):
        conf, want = runs[run_id], expected[run_id]
        seen = {"ops": conf.get("ops"), "partition": conf.get("partition")}
        tags = conf.get("dagster_tags", {})
        seen["tags"] = {k: tags.get(k) for k in want["tags"]}
        if seen != want:
            differences.append(f"run {run_id}: conf {conf!r}, Dagster's request {want!r}")
    if tick.xcoms.get(SENSOR_TASK_ID, {}).get("triggered") != sorted(expected):
        differences.append(f"the tick's triggered runs: {tick.xcoms.get(SENSOR_TASK_ID)!r}")
    cursor = home.airflow("variables", "get", cursor_variable(SENSOR_DAG))
    if cursor.stdout.strip().splitlines()[-1:] != [result.cursor]:
        differences.append(
            f"the cursor Variable: {cursor.stdout[-200:]!r}, Dagster's {result.cursor!r}"
        )
    return differences


def dagster_home(work: Path) -> Path:
    """The team instance's Dagster home: SQLite (`airflow dags test` runs one task at a time)."""
    home = work / "dagster-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def team_instance(home, work: Path, report) -> list[str]:
    """The compare kit's run of TEAM_INSTANCE_JOB with --dagster-home, as the instance holds it:
    the end task ran, the run's status is that of Dagster's own run, and the instance's event log
    has the materializations Dagster's own run made."""
    from dagster import DagsterInstance

    if report.airflow is None or report.dagster is None:
        return ["the assets job's comparison made no Airflow run"]
    dag_id = f"compare_{TEAM_INSTANCE_JOB}"
    differences = []
    ends = [
        ti.state
        for (airflow_run_id,) in _dag_runs(home, dag_id)
        for ti in home.task_instances(dag_id, airflow_run_id)
        if ti.task_id == END_TASK
    ]
    if ends != ["success"]:
        differences.append(f"the end task {END_TASK!r}: {ends or 'not in the DAG run'}")
    outcomes = {step.outcome for step in report.dagster.steps.values()}
    status = "FAILURE" if outcomes & {"failure", "upstream_failed"} else "SUCCESS"
    with DagsterInstance.from_config(str(dagster_home(work))) as instance:
        run = instance.get_run_by_id(report.airflow.run_id)
        if run is None:
            return [*differences, f"the instance has no run {report.airflow.run_id}"]
        if run.status.value != status:
            differences.append(f"the instance's run is {run.status.value}, Dagster's own {status}")
        made = sorted(
            e.dagster_event.asset_key.to_user_string()
            for e in instance.all_logs(run.run_id)
            if e.dagster_event is not None and e.dagster_event.is_step_materialization
        )
    theirs = sorted(
        asset
        for step in report.dagster.steps.values()
        for asset, _ in step.materializations().elements()
    )
    if made != theirs:
        differences.append(f"the instance's materializations: {made}, Dagster's own run's {theirs}")
    return differences


def _dag_runs(home, dag_id: str) -> list[tuple[str]]:
    with sqlite3.connect(home.path / "airflow.db") as db:
        return db.execute("SELECT run_id FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()
