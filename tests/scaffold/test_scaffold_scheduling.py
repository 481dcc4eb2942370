"""What Airflow makes of a scaffolded DAG's schedule, params and asset outlets, read by importing
the file as Airflow's DAG processor does."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import EXAMPLES, JOBS, run_cli, scaffold

INSPECT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("scaffolded_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.dag
timetable = dag.timetable
print(json.dumps({
    "timetable": type(timetable).__name__,
    "cron": getattr(timetable, "expression", None),
    "start_date": dag.start_date.isoformat(),
    "catchup": dag.catchup,
    "params": {k: dag.params.get_param(k).schema for k in dag.params},
    "outlets": {t: [o.uri for o in task.outlets] for t, task in dag.task_dict.items()},
    "waits_for": [a.uri for a in timetable.asset_condition.objects]
    if type(timetable).__name__ == "AssetTriggeredTimetable" else [],
}, default=str))
"""


def inspect(tmp_path, *args: str) -> dict:
    path = tmp_path / "dag.py"
    path.write_text(scaffold(*args, "-f", str(EXAMPLES / "scheduling.py")))
    done = subprocess.run(
        [sys.executable, "-c", INSPECT, str(path)], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_time_partitions_schedule_the_dag_from_their_first_launch(tmp_path):
    dag = inspect(tmp_path, "hourly_job")

    assert (dag["timetable"], dag["cron"]) == ("CronTriggerTimetable", "0 * * * *")
    assert dag["start_date"] == "2022-05-31T01:00:00+00:00"
    assert dag["catchup"] is False
    assert dag["params"]["partition"]["type"] == ["null", "string"]
    assert dag["outlets"] == {
        "hourly_readings": ["dagster://asset/hourly_readings"],
        "hourly_summary": ["dagster://asset/hourly_summary"],
    }


def test_static_partitions_are_a_param_and_no_schedule(tmp_path):
    dag = inspect(tmp_path, "colours")

    assert dag["timetable"] == "NullTimetable"
    assert dag["params"]["partition"]["enum"] == [None, "red", "green", "blue"]


def test_a_dag_can_run_on_the_assets_another_dag_materializes(tmp_path):
    dag = inspect(tmp_path, "report_job", "--schedule-on-assets", "--asset-uri", "s3://lake/{key}")

    assert dag["timetable"] == "AssetTriggeredTimetable"
    assert dag["waits_for"] == ["s3://lake/orders"]
    assert dag["outlets"] == {"order_report": ["s3://lake/order_report"]}


def test_schedule_on_assets_without_source_assets_is_refused(tmp_path):
    done = run_cli(
        "scaffold", "hourly_job", "-f", str(EXAMPLES / "scheduling.py"), "--schedule-on-assets"
    )

    assert done.returncode == 2
    assert "reads no asset that another job materializes" in done.stderr


def test_dynamic_partitions_are_refused_at_scaffold(tmp_path):
    done = run_cli("scaffold", "fruit_job", "-f", str(EXAMPLES / "scheduling.py"))

    assert done.returncode == 2
    assert done.stderr.count(".") >= 1 and "has dynamic partitions" in done.stderr


def test_the_dag_file_is_the_same_each_time_the_job_is_scaffolded():
    # Dagster's config field order varies between processes, and time partitions grow with the
    # clock: neither may change the file, or Airflow would see a new DAG version each time.
    args = ("hourly_job", "-f", str(EXAMPLES / "scheduling.py"))
    assert scaffold(*args) == scaffold(*args)


def test_a_job_whose_config_comes_only_from_its_partitions_scaffolds(tmp_path):
    # Its op's config has no default: planned with the first partition's config, run with the
    # DAG run's partition.
    path = tmp_path / "dag.py"
    path.write_text(scaffold("needs_a_partition", "-f", str(JOBS / "config_mapping.py")))
    done = subprocess.run(
        [sys.executable, "-c", INSPECT, str(path)], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    dag = json.loads(done.stdout.strip().splitlines()[-1])
    assert dag["params"]["partition"]["enum"] == [None, "north", "south"]
