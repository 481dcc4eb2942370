"""Trigger-time run config and partitions, through a real Airflow 3.3 on SQLite, compared with
Dagster's own runs of the same jobs."""

from __future__ import annotations

import datetime
import json
import pickle
import sqlite3

import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.filesystem import FilesystemStorage
from tests.conftest import EXAMPLES, JOBS, ROOT, scaffold

pytestmark = pytest.mark.airflow

JOB_FILE = str(EXAMPLES / "scheduling.py")
TYPED_CONFIG = yaml.safe_load((EXAMPLES / "scheduling.yml").read_text())


def install(airflow_home, tmp_path, job: str, *args: str) -> FilesystemStorage:
    storage_dir = tmp_path / "storage"
    text = scaffold(job, "-f", JOB_FILE, "--storage-option", f"base_dir={storage_dir}", *args)
    airflow_home.install(text, f"{job}.py")
    return FilesystemStorage(base_dir=str(storage_dir))


def output(storage, dag_id: str, result, step_key: str, name: str = "result"):
    run_id = dagster_run_id(dag_id, result.run_id)
    with storage.open_read(storage.key(run_id, step_key, name)) as stream:
        return pickle.load(stream)


@pytest.fixture
def typed_config_dag(airflow_home, tmp_path):
    return install(airflow_home, tmp_path, "typed_config", "-e", str(EXAMPLES / "scheduling.yml"))


def test_conf_merges_over_the_run_config_and_a_template_renders_its_fields_type(
    airflow_home, typed_config_dag
):
    conf = {"factor": 3, "ops": {"scale": {"config": {"ratio": 2.0, "mode": "CAREFUL"}}}}

    result = airflow_home.dags_test("typed_config", conf=conf)

    assert result.succeeded, result.output[-3000:]
    assert "factor 3 of type int" in result.task_log("scale")
    from examples.scheduling import typed_config

    merged = {"ops": {"scale": {"config": {**TYPED_CONFIG["ops"]["scale"]["config"]}}}}
    merged["ops"]["scale"]["config"] |= {"factor": 3, "ratio": 2.0, "mode": "CAREFUL"}
    dagster = typed_config.execute_in_process(run_config=merged)
    # Every step of the run saw the same merged config: the result is Dagster's.
    ours = output(typed_config_dag, "typed_config", result, "describe")
    assert ours == dagster.output_for_node("describe") == "Mode.CAREFUL:6.0"


def test_an_invalid_conf_fails_at_once_with_one_sentence(airflow_home, typed_config_dag):
    # Airflow itself refuses a conf that does not fit the params' JSON Schema: no run starts.
    refused = airflow_home.dags_test(
        "typed_config", conf={"factor": 3, "ops": {"scale": {"config": {"ratio": "fast"}}}}
    )
    assert not refused.succeeded
    assert "'fast' is not of type 'number'" in refused.output

    # What only Dagster can tell (the template renders "many" for an Int field) fails the first
    # task at once (AirflowFailException: no try is left for it), naming field, value and type.
    result = airflow_home.dags_test("typed_config", conf={"factor": "many"})

    assert not result.succeeded
    assert result.states == {"scale": "failed", "describe": "upstream_failed"}
    assert try_number(airflow_home, "typed_config", result.run_id, "scale") == 1
    log = result.task_log("scale")
    assert (
        "the run config for job 'typed_config' is invalid: Invalid scalar at path "
        'root:ops:scale:config:factor; value "many" of type "<class \'str\'>" is not valid '
        "for expected type \"Int\"; fix it in the DAG's run_config or the DAG run's conf."
    ) in log
    assert "AirflowFailException" in log


def try_number(airflow_home, dag_id: str, run_id: str, task_id: str) -> int:
    with sqlite3.connect(airflow_home.path / "airflow.db") as db:
        (number,) = db.execute(
            "SELECT try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            (dag_id, run_id, task_id),
        ).fetchone()
    return number


def dagster_partition_run(job_name: str, partition: str):
    """Dagster's own run of one partition of a job of the test's code location."""
    from examples.scheduling import defs

    return defs.resolve_job_def(job_name).execute_in_process(partition_key=partition)


def test_an_hourly_run_executes_the_partition_dagsters_schedule_would_launch(
    airflow_home, tmp_path
):
    storage = install(airflow_home, tmp_path, "hourly_job")

    # Dagster's schedule launches partition 00:00 at 01:00, once that hour has ended.
    at_one = airflow_home.dags_test("hourly_job", logical_date="2022-05-31T01:00:00+00:00")
    # conf["partition"] picks any partition, whatever the logical date.
    chosen = airflow_home.dags_test("hourly_job", conf={"partition": "2022-06-01-05:00"})

    for result, partition in ((at_one, "2022-05-31-00:00"), (chosen, "2022-06-01-05:00")):
        assert result.succeeded, result.output[-3000:]
        assert f"materializing partition {partition}" in result.task_log("hourly_readings")
        dagster = dagster_partition_run("hourly_job", partition)
        for step in ("hourly_readings", "hourly_summary"):
            ours = output(storage, "hourly_job", result, step)
            assert ours == dagster.output_for_node(step)
        assert ours == f"readings for {partition} summarized ({partition})"


def test_a_static_partitioned_config_job_runs_the_chosen_partition(airflow_home, tmp_path):
    storage = install(airflow_home, tmp_path, "colours")

    result = airflow_home.dags_test("colours", conf={"partition": "green"})
    unknown = airflow_home.dags_test("colours", conf={"partition": "purple"}, dag_file=None)

    assert result.succeeded, result.output[-3000:]
    ours = output(storage, "colours", result, "paint")
    assert ours == dagster_partition_run("colours", "green").output_for_node("paint")
    assert ours == "painted green (partition green)"
    # Airflow's own check of the param's enum refuses a key that is not a partition.
    assert not unknown.succeeded
    assert "'purple' is not one of [None, 'red', 'green', 'blue']" in unknown.output


def test_a_daily_backfill_of_three_days_materializes_those_three_partitions(airflow_home, tmp_path):
    storage = install(airflow_home, tmp_path, "daily_job")
    days = ("2022-06-02", "2022-06-03", "2022-06-04")

    results = [
        airflow_home.dags_test("daily_job", logical_date=f"{d}T00:00:00+00:00") for d in days
    ]

    partitions = []
    for result in results:
        assert result.succeeded, result.output[-3000:]
        ours = output(storage, "daily_job", result, "daily_totals")
        assert ours == dagster_partition_run("daily_job", ours["partition"]).output_for_node(
            "daily_totals"
        )
        partitions.append(ours["partition"])
    # Each day's run materializes the day that ended at its logical date.
    assert partitions == ["2022-06-01", "2022-06-02", "2022-06-03"]


def asset_events(airflow_home, dag_id: str, run_id: str) -> dict[str, dict]:
    """Airflow's asset events of one DAG run, as its database holds them: name -> extra."""
    with sqlite3.connect(airflow_home.path / "airflow.db") as db:
        rows = db.execute(
            "SELECT asset.name, asset.uri, asset_event.extra FROM asset_event "
            "JOIN asset ON asset.id = asset_event.asset_id "
            "WHERE asset_event.source_dag_id = ? AND asset_event.source_run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    return {name: {"uri": uri, "extra": json.loads(extra)} for name, uri, extra in rows}


def test_assets_are_airflow_assets_and_a_failed_blocking_check_fails_its_task(
    airflow_home, tmp_path
):
    storage_dir = tmp_path / "storage"
    text = scaffold("checked_job", "-f", JOB_FILE, "--storage-option", f"base_dir={storage_dir}")
    airflow_home.install(text, "checked_job.py")
    storage = FilesystemStorage(base_dir=str(storage_dir))

    result = airflow_home.dags_test("checked_job")

    from examples.scheduling import defs

    dagster = defs.resolve_job_def("checked_job").execute_in_process(raise_on_error=False)
    # As in Dagster: the failed blocking check fails its step, and what reads the asset never runs.
    assert not result.succeeded
    assert result.states == {
        "orders": "success",
        "refunds": "failed",
        "refund_report": "upstream_failed",
    }
    assert dagster.is_node_success("orders") and dagster.is_node_failed("refunds")
    assert "refund_report" not in {e.step_key for e in dagster.all_events if e.is_step_start}
    assert "Asset check 'positive' on 'orders' passed: {'min': 1}" in result.task_log("orders")
    assert "Asset check 'balanced' on 'refunds' failed (severity ERROR)" in result.task_log(
        "refunds"
    )

    # The materialization's asset event, read back from Airflow, carries Dagster's metadata and
    # the check; the failed task emitted none.
    run_id = dagster_run_id("checked_job", result.run_id)
    events = asset_events(airflow_home, "checked_job", result.run_id)
    assert list(events) == ["orders"]
    assert events["orders"]["uri"] == "dagster://asset/orders"
    extra = events["orders"]["extra"]
    assert extra["partition"] is None
    # Dagster's metadata: the op's own, and the IO manager's (where the value went).
    metadata = extra["metadata"]
    assert metadata.pop("uri") == str(storage_dir / run_id / "orders" / "result")
    assert metadata == {"rows": 3, "source": "shop"}
    assert extra["checks"] == {
        "positive": {"passed": True, "severity": "ERROR", "metadata": {"min": 1}}
    }
    # The step's event log holds each materialization and check evaluation, as Dagster's does.
    with storage.open_read(storage.key(run_id, "refunds", "events.jsonl")) as stream:
        logged = [json.loads(line) for line in stream.read().decode().splitlines()]
    kinds = {e["dagster_airflow_event"]: e for e in logged}
    assert kinds["ASSET_MATERIALIZATION"]["asset_key"] == "refunds"
    assert kinds["ASSET_MATERIALIZATION"]["metadata"]["rows"] == 2
    check = kinds["ASSET_CHECK_EVALUATION"]
    assert (check["check_name"], check["passed"], check["severity"]) == ("balanced", False, "ERROR")
    # Materializations and checks, step by step, are the ones Dagster's own run recorded.
    ours = set()
    for step in ("orders", "refunds"):
        with storage.open_read(storage.key(run_id, step, "events.jsonl")) as stream:
            for line in stream.read().decode().splitlines():
                event = json.loads(line)
                if "asset_key" in event:
                    ours.add((event["asset_key"], event.get("check_name"), event.get("passed")))
    theirs = {
        (e.asset_key.to_user_string(), None, None)
        for e in dagster.get_asset_materialization_events()
    }
    theirs |= {
        (e.asset_key.to_user_string(), e.check_name, e.passed)
        for e in dagster.get_asset_check_evaluations()
    }
    assert ours == theirs


PROJECT = ["-f", str(JOBS / "project" / "definitions.py"), "-d", str(ROOT)]


def install_project_job(airflow_home, tmp_path, job: str) -> FilesystemStorage:
    storage_dir = tmp_path / "storage"
    text = scaffold(job, *PROJECT, "--storage-option", f"base_dir={storage_dir}")
    airflow_home.install(text, f"{job}.py")
    return FilesystemStorage(base_dir=str(storage_dir))


def test_a_schedule_functions_tick_decides_each_run_as_dagsters_daemon_would(
    airflow_home, tmp_path
):
    """A weekday tick runs with the run config Dagster's evaluation of that tick gives; a
    Saturday's skips the run with the schedule's SkipReason as its one line."""
    import dagster as dg

    from tests.jobs.project.schedules import daily_load, weekday_loads

    storage = install_project_job(airflow_home, tmp_path, "daily_load")
    weekday, saturday = "2026-12-03T18:30:00+00:00", "2026-12-05T06:00:00+00:00"

    ran = airflow_home.dags_test("daily_load", logical_date=weekday)
    skipped = airflow_home.dags_test("daily_load", logical_date=saturday)

    assert ran.succeeded, ran.output[-3000:]
    assert ran.states == {"dagster_schedule_tick": "success", "load_day": "success"}
    at = datetime.datetime.fromisoformat(weekday)
    with dg.build_schedule_context(scheduled_execution_time=at) as context:
        (request,) = weekday_loads.evaluate_tick(context).run_requests
    dagster = daily_load.execute_in_process(run_config=request.run_config, tags=request.tags)
    ours = output(storage, "daily_load", ran, "load_day")
    assert ours == dagster.output_for_node("load_day") == "2026-12-03 18:30"
    assert skipped.states == {"dagster_schedule_tick": "skipped", "load_day": "skipped"}
    line = "schedule 'weekday_loads' skipped: no load on Saturdays"
    assert line in skipped.task_log("dagster_schedule_tick")


def test_a_static_schedules_run_config_and_tags_reach_the_dagster_run(airflow_home, tmp_path):
    """The run config and tags of the Dagster run are those of Dagster's run for that tick:
    the schedule's, the job's, and dagster/schedule_name as Dagster's daemon adds it."""
    import dagster as dg

    from tests.jobs.project.schedules import nightly_berlin

    storage = install_project_job(airflow_home, tmp_path, "nightly_report")
    for pool in ("warehouse", "reports"):  # as docs/scheduling.md says to create them
        airflow_home.airflow("pools", "set", pool, "1", "a Dagster concurrency pool")
    at = "2026-12-03T01:30:00+00:00"

    result = airflow_home.dags_test("nightly_report", logical_date=at)

    assert result.succeeded, result.output[-3000:]
    when = datetime.datetime.fromisoformat(at)
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        (request,) = nightly_berlin.evaluate_tick(context).run_requests
    seen = output(storage, "nightly_report", result, "extract")
    assert seen["config"] == request.run_config
    expected = {**request.tags, "team": "finance", "dagster/schedule_name": "nightly_berlin"}
    assert {k: seen["run_tags"].get(k) for k in expected} == expected
    assert output(storage, "nightly_report", result, "report") == "emea"
