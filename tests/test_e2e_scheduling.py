"""Trigger-time run config and partitions, through a real Airflow 3.3 on SQLite, compared with
Dagster's own runs of the same jobs."""

from __future__ import annotations

import pickle
import sqlite3

import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from dagster_airflow.storage.filesystem import FilesystemStorage
from tests.conftest import JOBS, scaffold

pytestmark = pytest.mark.airflow

JOB_FILE = str(JOBS / "scheduling.py")
TYPED_CONFIG = {
    "ops": {
        "scale": {
            "config": {
                "factor": "{{ dag_run.conf.factor }}",
                "ratio": 1.5,
                "enabled": True,
                "mode": "FAST",
                "tags": ["a"],
                "extra": {"anything": 1},
            }
        }
    }
}


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
    config = tmp_path / "typed.yml"
    config.write_text(yaml.safe_dump(TYPED_CONFIG))
    return install(airflow_home, tmp_path, "typed_config", "-e", str(config))


def test_conf_merges_over_the_run_config_and_a_template_renders_its_fields_type(
    airflow_home, typed_config_dag
):
    conf = {"factor": 3, "ops": {"scale": {"config": {"ratio": 2.0, "mode": "CAREFUL"}}}}

    result = airflow_home.dags_test("typed_config", conf=conf)

    assert result.succeeded, result.output[-3000:]
    assert "factor 3 of type int" in result.task_log("scale")
    from tests.jobs.scheduling import typed_config

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
    # task at once, without the retry the DAG allows, naming the field, the value and the type.
    result = airflow_home.dags_test("typed_config", conf={"factor": "many"})

    assert not result.succeeded
    assert result.states == {"scale": "failed", "describe": "upstream_failed"}
    assert try_number(airflow_home, "typed_config", result.run_id, "scale") == 1
    log = result.task_log("scale")
    assert (
        'Invalid scalar at path root:ops:scale:config:factor. Value "many" of type '
        '"<class \'str\'>" is not valid for expected type "Int"' in log
    )
    assert "AirflowFailException" in log


def try_number(airflow_home, dag_id: str, run_id: str, task_id: str) -> int:
    with sqlite3.connect(airflow_home.path / "airflow.db") as db:
        (number,) = db.execute(
            "SELECT try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            (dag_id, run_id, task_id),
        ).fetchone()
    return number
