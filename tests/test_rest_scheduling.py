"""A trigger with conf through Airflow's REST API, and the asset events read back through it,
on a real deployment (scheduler, DAG processor, api-server, LocalExecutor)."""

from __future__ import annotations

import pickle

import pytest

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.testing.airflow_deployment import AirflowDeployment
from dagster_airflow.testing.servers import free_port
from tests.conftest import EXAMPLES, scaffold

pytestmark = pytest.mark.airflow

JOB_FILE = str(EXAMPLES / "scheduling.py")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with AirflowDeployment(tmp_path_factory.mktemp("deployment"), port=free_port()) as airflow:
        yield airflow


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
