"""A trigger with conf through Airflow's REST API, and the asset events read back through it,
on the session's real deployment (scheduler, DAG processor, api-server, triggerer,
LocalExecutor)."""

from __future__ import annotations

import pickle

import pytest

from dagster_airflow.model import dagster_run_id
from dagster_airflow.step_server.protocol import running_servers
from dagster_airflow.storage.filesystem import FilesystemStorage
from harness.airflow_deployment import AirflowDeployment
from tests.conftest import EXAMPLES, scaffold

pytestmark = pytest.mark.airflow

JOB_FILE = str(EXAMPLES / "scheduling.py")


@pytest.fixture
def deployment(airflow_deployment: AirflowDeployment) -> AirflowDeployment:
    """The session's deployment (tests/e2e/test_deployment_local.py shares it)."""
    return airflow_deployment


def test_a_rest_trigger_with_conf_runs_the_merged_config_and_reports_asset_events(
    deployment, tmp_path
):
    storage_dir = tmp_path / "storage"
    options = ["--storage-option", f"base_dir={storage_dir}"]
    deployment.install(
        scaffold("typed_config", "-f", JOB_FILE, "-e", str(EXAMPLES / "scheduling.yml"), *options),
        "typed_config.py",
    )
    deployment.install(scaffold("hourly_job", "-f", JOB_FILE, *options), "hourly_job.py")
    deployment.wait_for_dag("typed_config")
    deployment.wait_for_dag("hourly_job")

    deployment.trigger(
        "typed_config", "rest-typed", {"factor": 4, "ops": {"scale": {"config": {"ratio": 0.5}}}}
    )
    deployment.trigger("hourly_job", "rest-hourly", {"partition": "2022-06-01-05:00"})
    # The REST API refuses a conf that does not fit the params, before any run exists.
    status, body = deployment.rest(
        "POST",
        "/api/v2/dags/typed_config/dagRuns",
        {
            "dag_run_id": "rest-bad",
            "logical_date": None,
            "conf": {"ops": {"scale": {"config": {"ratio": "x"}}}},
        },
    )
    assert status == 400, body
    assert "'x' is not of type 'number'" in str(body)

    assert deployment.wait_for_run("typed_config", "rest-typed") == "success"
    assert deployment.wait_for_run("hourly_job", "rest-hourly") == "success"

    storage = FilesystemStorage(base_dir=str(storage_dir))
    run_id = dagster_run_id("typed_config", "rest-typed")
    with storage.open_read(storage.key(run_id, "describe", "result")) as stream:
        assert pickle.load(stream) == "Mode.FAST:2.0"

    status, body = deployment.rest(
        "GET", "/api/v2/assets/events?source_dag_id=hourly_job&source_run_id=rest-hourly"
    )
    assert status == 200, body
    events = {e["uri"]: e["extra"] for e in body["asset_events"]}
    assert set(events) == {"dagster://asset/hourly_readings", "dagster://asset/hourly_summary"}
    for extra in events.values():
        assert extra["partition"] == "2022-06-01-05:00"
        assert extra["metadata"]["uri"].startswith(str(storage_dir))
    # Under the LocalExecutor too, one step server forked every step of the two runs (and of
    # any scheduled run of hourly_job the scheduler started meanwhile).
    tries = []
    for dag_id, run in (("typed_config", "rest-typed"), ("hourly_job", "rest-hourly")):
        status, body = deployment.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances")
        assert status == 200, body
        tries += [(ti["task_id"], ti["try_number"], ti["state"]) for ti in body["task_instances"]]
    (server,) = [
        server
        for server in running_servers(deployment.runtime_dir)
        if server.info["code_location"].get("python_file") == JOB_FILE
    ]
    log = server.files.log.read_text()
    assert server.status()["steps"] >= sum(n for _, n, _ in tries) == 4, (tries, log)


def test_a_dag_scheduled_on_assets_runs_when_another_dag_materializes_them(deployment, tmp_path):
    options = ["--storage-option", f"base_dir={tmp_path / 'storage'}"]
    checked = scaffold("checked_job", "-f", JOB_FILE, *options)
    deployment.install(checked.replace('"retries": 1', '"retries": 0'), "checked_job.py")
    report = scaffold("report_job", "-f", JOB_FILE, "--schedule-on-assets", *options)
    deployment.install(report.replace('"retries": 1', '"retries": 0'), "report_job.py")
    deployment.wait_for_dag("checked_job")
    deployment.wait_for_dag("report_job")

    deployment.trigger("checked_job", "makes-orders")

    # refunds' blocking check fails that run; orders succeeded and its asset event starts
    # report_job, whose order_report reads the orders checked_job wrote.
    assert deployment.wait_for_run("checked_job", "makes-orders") == "failed"
    runs: list[dict] = []

    def report_ran() -> bool:
        _, body = deployment.rest("GET", "/api/v2/dags/report_job/dagRuns")
        runs[:] = [r for r in body.get("dag_runs", []) if r["state"] in ("success", "failed")]
        return bool(runs)

    deployment.wait_until(report_ran, 300, "an asset-triggered run of report_job")
    assert runs[0]["run_type"] == "asset_triggered"
    assert runs[0]["state"] == "success"
    # order_report read the orders checked_job's run wrote: 3 + 1 + 2.
    storage = FilesystemStorage(base_dir=str(tmp_path / "storage"))
    run_id = dagster_run_id("report_job", runs[0]["dag_run_id"])
    with storage.open_read(storage.key(run_id, "order_report", "result")) as stream:
        assert pickle.load(stream) == 6


def test_an_airflow_backfill_of_three_days_materializes_those_partitions(deployment, tmp_path):
    storage = FilesystemStorage(base_dir=str(tmp_path / "storage"))
    options = ["--storage-option", f"base_dir={tmp_path / 'storage'}"]
    deployment.install(scaffold("daily_job", "-f", JOB_FILE, *options), "daily_job.py")
    deployment.wait_for_dag("daily_job")

    # The DAG is unpaused: the scheduler starts its latest interval's run at once. The backfill
    # is asked for once that run has ended: a POST that loses SQLite's one writer lock to that
    # run's end (503, retried by deployment.write) leaves backfill runs that Airflow deletes
    # again, and a scheduler creating their task instances meanwhile crashed on the deleted row
    # (a full run under load, 2026-12-07).
    def scheduled_run_ended() -> bool:
        _, body = deployment.rest("GET", "/api/v2/dags/daily_job/dagRuns?run_type=scheduled")
        ended = [r for r in body.get("dag_runs", []) if r["state"] in ("success", "failed")]
        return bool(ended)

    deployment.wait_until(scheduled_run_ended, 300, "the scheduled run of daily_job")
    status, backfill = deployment.write(
        "/api/v2/backfills",
        {
            "dag_id": "daily_job",
            "from_date": "2022-06-02T00:00:00Z",
            "to_date": "2022-06-04T00:00:00Z",
            "max_active_runs": 3,
            "reprocess_behavior": "none",
        },
    )
    assert status == 200, backfill
    runs: list[dict] = []

    def all_finished() -> bool:
        _, body = deployment.rest("GET", "/api/v2/dags/daily_job/dagRuns?run_type=backfill")
        runs[:] = body.get("dag_runs", [])
        return len(runs) == 3 and all(r["state"] in ("success", "failed") for r in runs)

    deployment.wait_until(all_finished, 600, "the backfill's three runs")
    partitions = {}
    for run in runs:
        assert run["state"] == "success", run
        run_id = dagster_run_id("daily_job", run["dag_run_id"])
        with storage.open_read(storage.key(run_id, "daily_totals", "result")) as stream:
            partitions[run["logical_date"][:10]] = pickle.load(stream)["partition"]
    # Each run materializes the day that ended at its logical date, as Dagster's schedule would.
    assert partitions == {
        "2022-06-02": "2022-06-01",
        "2022-06-03": "2022-06-02",
        "2022-06-04": "2022-06-03",
    }
