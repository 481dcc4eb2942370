"""Retries and config mapping through a real Airflow 3.3 (`airflow dags test`), each compared with
Dagster's own in-process run of the same job: per-step outcome, attempts (Airflow tries),
`context.retry_number` as the op saw it, hooks fired, and the result."""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import yaml

from dagster_airflow.model import dagster_run_id
from tests.conftest import JOBS, scaffold

pytestmark = pytest.mark.airflow

# Airflow's state of a task for Dagster's outcome of its step ("not run": upstream failed).
AIRFLOW_STATE = {"success": "success", "failure": "failed", "not run": "upstream_failed"}


def record_config(path: Path) -> dict:
    return {"resources": {"record": {"config": {"path": str(path)}}}}


def dagster_reference(job_name: str, record: Path) -> tuple[dict[str, str], Counter, list[str]]:
    """Dagster's own run of the job: each step's outcome, its attempts, the record lines."""
    from tests.jobs.retries import defs

    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(run_config=record_config(record), raise_on_error=False)
    outcomes: dict[str, str] = {}
    starts: Counter = Counter()
    for event in result.all_events:
        # In one process, Dagster starts a step once and restarts it for each retry.
        if event.event_type_value in ("STEP_START", "STEP_RESTARTED"):
            starts[event.step_key] += 1
        elif event.event_type_value == "STEP_SUCCESS":
            outcomes[event.step_key] = "success"
        elif event.event_type_value == "STEP_FAILURE":
            outcomes[event.step_key] = "failure"
    for node in job.nodes:
        outcomes.setdefault(node.name, "not run")
    return outcomes, starts, record.read_text().splitlines()


def airflow_tries(home, dag_id: str, run_id: str) -> Counter:
    """How many tries Airflow ran of each task (a task that never ran has none)."""
    with sqlite3.connect(home.path / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, try_number, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    return Counter({task_id: tries for task_id, tries, state in rows if tries})


def run_retries_dag(airflow_home, tmp_path, job_name: str, edit=None):
    record = tmp_path / "airflow_record.txt"
    config = tmp_path / "record.yml"
    config.write_text(yaml.safe_dump(record_config(record)))
    storage_dir = tmp_path / "storage"
    text = scaffold(
        job_name,
        "-f",
        str(JOBS / "retries.py"),
        "-e",
        str(config),
        "--dag-id",
        f"e2e_{job_name}",
        "--storage-option",
        f"base_dir={storage_dir}",
    )
    if edit:
        text = edit(text)
    airflow_home.install(text, f"e2e_{job_name}.py")
    result = airflow_home.dags_test(f"e2e_{job_name}")
    return result, record.read_text().splitlines(), storage_dir


def test_every_retry_policy_form_retries_as_in_dagster(airflow_home, tmp_path):
    """Op, invocation and job policies; exponential, linear and jittered delays; a policy that
    runs out, a Failure that refuses retries, and the downstream of a failed step."""
    result, airflow_record, storage_dir = run_retries_dag(airflow_home, tmp_path, "retry_policies")
    outcomes, attempts, dagster_record = dagster_reference(
        "retry_policies", tmp_path / "dagster_record.txt"
    )

    assert result.states == {step: AIRFLOW_STATE[o] for step, o in outcomes.items()}
    # Each Dagster attempt was one Airflow try, no more and no fewer.
    assert airflow_tries(airflow_home, result.dag_id, result.run_id) == attempts
    assert attempts == {
        "flaky_twice": 3,
        "flaky_once": 2,
        "job_policy_op": 2,
        "always_fails": 2,
        "refuses_retry": 1,
        "steady": 1,
    }
    # The same attempts with the same context.retry_number, the same hooks, as many times.
    assert Counter(airflow_record) == Counter(dagster_record)

    retried = "failed on try 1 and is retried in 0.2 s: ValueError: flaky_twice fails on attempt 0"
    assert retried in result.task_log("flaky_twice")
    assert "retries are disabled" not in result.output
    # Dagster's final word fails the task at once, with the op's own exception.
    assert "AirflowFailException: Dagster step 'always_fails' failed" in result.task_log(
        "always_fails"
    )
    assert "ValueError: always_fails fails on attempt 1" in result.task_log("always_fails")
    # The step's event log holds all three attempts.
    run_id = dagster_run_id(result.dag_id, result.run_id)
    events = (storage_dir / run_id / "flaky_twice" / "events.jsonl").read_text().splitlines()
    ends = [
        (e["attempt"], e["dagster_airflow_event"])
        for e in map(json.loads, events)
        if e["dagster_airflow_event"] in ("STEP_UP_FOR_RETRY", "STEP_SUCCESS")
    ]
    assert ends == [(1, "STEP_UP_FOR_RETRY"), (2, "STEP_UP_FOR_RETRY"), (3, "STEP_SUCCESS")]


def test_retry_requested_is_retried_given_the_tries_and_no_policy_means_no_retry(
    airflow_home, tmp_path
):
    # What docs/scaffold.md tells a user whose op raises RetryRequested(max_retries=2); and a
    # task with a runner that does not exist, which no retry can fix.
    def edit(text: str) -> str:
        task = 'DagsterOperator(task_id="requests_retry"'
        assert task in text
        misconfigured = (
            '    misconfigured = DagsterOperator(task_id="misconfigured", '
            'step_key="requests_retry", runner="kubernetes", retries=3)\n'
        )
        text = text.replace(task, task + ", retries=2")
        first = "\n    requests_retry = "
        return text.replace(first, "\n" + misconfigured + first.lstrip("\n"))

    result, airflow_record, _ = run_retries_dag(airflow_home, tmp_path, "retry_requested", edit)
    outcomes, attempts, dagster_record = dagster_reference(
        "retry_requested", tmp_path / "dagster_record.txt"
    )

    tries = airflow_tries(airflow_home, result.dag_id, result.run_id)
    assert (result.states.pop("misconfigured"), tries.pop("misconfigured")) == ("failed", 1)
    assert "AirflowFailException: task 'misconfigured': runner 'kubernetes' is not available" in (
        result.task_log("misconfigured")
    )
    assert result.states == {step: AIRFLOW_STATE[o] for step, o in outcomes.items()}
    assert tries == attempts
    assert attempts == {"requests_retry": 3, "fails_without_policy": 1}
    assert Counter(airflow_record) == Counter(dagster_record)
    assert "ValueError: fails_without_policy fails on attempt 0" in result.task_log(
        "fails_without_policy"
    )


def test_a_job_with_a_config_mapping_runs_as_in_dagster(airflow_home, tmp_path):
    # Default configs (RunConfig, pythonic Config) and partitioned configs:
    # tests/worker/test_worker.py.
    run_config = {"word": "hey", "times": 2}
    (tmp_path / "run.yml").write_text(yaml.safe_dump(run_config))
    storage_dir = tmp_path / "storage"
    text = scaffold(
        "mapped",
        "-f",
        str(JOBS / "config_mapping.py"),
        "-e",
        str(tmp_path / "run.yml"),
        "--dag-id",
        "e2e_mapped",
        "--storage-option",
        f"base_dir={storage_dir}",
    )
    airflow_home.install(text, "e2e_mapped.py")

    result = airflow_home.dags_test("e2e_mapped")

    assert result.succeeded, result.output[-3000:]
    assert result.states == {"repeat": "success", "count": "success"}
    run_id = dagster_run_id(result.dag_id, result.run_id)
    ours = pickle.loads((storage_dir / run_id / "count" / "result").read_bytes())
    from tests.jobs.config_mapping import mapped

    assert ours == mapped.execute_in_process(run_config=run_config).output_for_node("count") == 6
