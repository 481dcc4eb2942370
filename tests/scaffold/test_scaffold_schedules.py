"""A job's Dagster schedule, tags, pools, priorities, executor limit and run timeout, as the DAG
Airflow gets from the scaffolded file (imported as Airflow's DAG processor imports it); what
Airflow cannot express said in one sentence; `check` reporting drift in each."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import JOBS, ROOT, run_cli, scaffold

PROJECT = ["-f", str(JOBS / "project" / "definitions.py"), "-d", str(ROOT)]

INSPECT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("scaffolded_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
timetable = dag.timetable
print(json.dumps({
    "timetable": type(timetable).__name__,
    "crons": list(getattr(timetable, "crons", ())),
    "timezone": getattr(timetable, "timezone_name", None),
    "paused": dag.is_paused_upon_creation,
    "tags": sorted(dag.tags),
    "max_active_tasks": dag.max_active_tasks,
    "timeout": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
    "run_config": dag.user_defined_macros["run_config"],
    "tasks": {
        t: {
            "pool": task.pool,
            "priority_weight": task.priority_weight,
            "upstream": sorted(task.upstream_task_ids),
            "run_tags": dict(task.run_tags),
            "schedule": task.schedule,
            "schedule_tick": task.schedule_tick,
        }
        for t, task in dag.task_dict.items()
    },
}, default=str))
"""


def inspect(tmp_path, *args: str) -> dict:
    path = tmp_path / "dag.py"
    path.write_text(scaffold(*args))
    done = subprocess.run(
        [sys.executable, "-c", INSPECT, str(path)], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_static_schedule_its_tags_pools_priorities_limit_and_timeout(tmp_path):
    dag = inspect(tmp_path, "nightly_report", *PROJECT)

    assert dag["timetable"] == "DagsterCronTimetable"
    assert (dag["crons"], dag["timezone"]) == (["30 2 * * 1-5"], "Europe/Berlin")
    assert dag["paused"] is False  # default_status=RUNNING
    assert dag["tags"] == ["dagster", "shift:night", "team:finance"]
    assert dag["max_active_tasks"] == 2  # the multiprocess executor's max_concurrent
    assert dag["timeout"] == 1800  # dagster/max_runtime
    assert dag["run_config"] == {"ops": {"report": {"config": {"region": "emea"}}}}
    extract, report = dag["tasks"]["extract"], dag["tasks"]["report"]
    assert (extract["pool"], extract["priority_weight"]) == ("warehouse", 7)  # the op's own
    assert (report["pool"], report["priority_weight"]) == ("reports", 3)  # the job's priority
    tags = {"shift": "night", "dagster/schedule_name": "nightly_berlin"}
    assert extract["run_tags"] == report["run_tags"] == tags


def test_a_schedule_function_gets_a_tick_task_before_every_step(tmp_path):
    dag = inspect(tmp_path, "daily_load", *PROJECT)

    assert dag["crons"] == ["0 6 * * *", "30 18 * * 1-5"]
    assert dag["paused"] is True  # default_status STOPPED
    tick, load = dag["tasks"]["dagster_schedule_tick"], dag["tasks"]["load_day"]
    assert tick["schedule"] == "weekday_loads" and tick["schedule_tick"] is None
    assert load["upstream"] == ["dagster_schedule_tick"]
    assert load["schedule_tick"] == "dagster_schedule_tick"
    assert dag["run_config"] == {}  # each run's is its tick's


def test_a_job_with_two_schedules_is_refused_unless_one_is_named(tmp_path):
    done = run_cli("scaffold", "twice_scheduled", *PROJECT)

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "dagster-airflow scaffold: job 'twice_scheduled' has 2 schedules (evening, morning) and "
        "an Airflow DAG has one schedule; scaffold one DAG per schedule with --schedule NAME and "
        "--dag-id (e.g. --dag-id JOB__SCHEDULE).\n"
    )
    dag = inspect(
        tmp_path, "twice_scheduled", *PROJECT, "--schedule", "evening", "--dag-id", "t__evening"
    )
    assert dag["crons"] == ["0 20 * * *"]


UNMAPPABLE = """
import dagster as dg

@dg.op
def ping():
    return 1

@dg.job(
    tags={"dagster/max_retries": "2", "note": "x" * 120},
    executor_def=dg.multiprocess_executor.configured(
        {"tag_concurrency_limits": [{"key": "db", "limit": 1}]}
    ),
)
def limited():
    ping()

@dg.job(tags={"dagster/priority": "high"})
def wrong_priority():
    ping()

defs = dg.Definitions(jobs=[limited, wrong_priority])
"""


def test_what_airflow_cannot_express_is_one_sentence_each_on_standard_error(tmp_path):
    jobs = tmp_path / "limited.py"
    jobs.write_text(UNMAPPABLE)

    done = run_cli("scaffold", "limited", "-f", str(jobs))

    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "note:" in line]
    assert notes == [
        "dagster-airflow scaffold: note: the tag 'note:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... "
        "of job 'limited' is 125 characters long and Airflow's DAG tags hold at most 100; it is "
        "left out of the DAG's tags.",
        "dagster-airflow scaffold: note: job 'limited' asks Dagster to retry a failed run "
        "(dagster/max_retries), and Airflow retries tasks, not runs: give the ops a RetryPolicy "
        "instead (their tasks' retries).",
        "dagster-airflow scaffold: note: the executor of job 'limited' limits steps by tag "
        "(tag_concurrency_limits), which Airflow cannot express per DAG; give those ops a pool= "
        "each (an Airflow pool of that many slots) instead.",
    ]
    done = run_cli("scaffold", "wrong_priority", "-f", str(jobs))
    assert done.returncode == 2
    assert done.stderr == (
        "dagster-airflow scaffold: the dagster/priority tag of job 'wrong_priority' is 'high', "
        "which is not a whole number; Dagster and Airflow both take an integer priority.\n"
    )


DRIFTING = """
import dagster as dg

@dg.op(pool="warehouse")
def ping():
    return 1

@dg.job(tags={"team": "finance", "dagster/max_runtime": "600"})
def drifting():
    ping()

nightly = dg.ScheduleDefinition(
    name="nightly", job=drifting, cron_schedule="0 2 * * *", execution_timezone="Europe/Berlin",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
defs = dg.Definitions(jobs=[drifting], schedules=[nightly])
"""


def test_check_reports_drift_in_the_schedule_tags_pools_and_timeout(tmp_path):
    jobs = tmp_path / "drifting.py"
    jobs.write_text(DRIFTING)
    dag = tmp_path / "drifting_dag.py"
    dag.write_text(scaffold("drifting", "-f", str(jobs)))
    assert run_cli("check", str(dag)).returncode == 0

    edited = (
        DRIFTING.replace('pool="warehouse"', 'pool="lake"')
        .replace('"team": "finance"', '"team": "risk"')
        .replace('"600"', '"900"')
        .replace('"0 2 * * *"', '"0 3 * * *"')
        .replace("RUNNING", "STOPPED")
    )
    jobs.write_text(edited)
    done = run_cli("check", str(dag))

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[:6] == [
        'schedule is DagsterCronTimetable(["0 2 * * *"], timezone="Europe/Berlin") in the file, '
        'DagsterCronTimetable(["0 3 * * *"], timezone="Europe/Berlin") for the job',
        'tags is ["dagster", "team:finance"] in the file, ["dagster", "team:risk"] for the job',
        "is_paused_upon_creation is False in the file, True for the job",
        "dagrun_timeout is datetime.timedelta(seconds=600.0) in the file, "
        "datetime.timedelta(seconds=900.0) for the job",
        """pool of step 'ping': "warehouse" in the file, "lake" in the job""",
        lines[5],
    ]
