"""A scaffolded task (``dagster_retries_only``) runs a try after the first only when the try
before it ended with Dagster's retry request, as the step's record written by the real worker
says; otherwise the try fails at once in one sentence, without starting the step. Through a
real Airflow: test_retry_requested_without_a_retry_policy in tests/e2e/test_semantics.py."""

from __future__ import annotations

import os
import subprocess

import attrs
import pytest
from airflow.sdk.definitions.retry_policy import RetryAction
from airflow.sdk.exceptions import AirflowFailException

from dagster_airflow.errors import StepFailedError, StepUpForRetryError
from dagster_airflow.model import (
    REQUEST_ENV_VAR,
    CodeLocation,
    StepRequest,
    StorageSpec,
    dagster_run_id,
)
from dagster_airflow.operator import DagsterOperator
from dagster_airflow.storage.filesystem import FilesystemStorage
from dagster_airflow.task.outcome import DagsterRetryPolicy
from dagster_airflow.task.retry_gate import retry_refusal
from tests.conftest import CLI, JOBS

JOB_FILE = str(JOBS / "semantics" / "retry_requests.py")
AIRFLOW_RUN_ID = "manual__2026-12-07T00:00:00+00:00"


@attrs.frozen
class TaskInstance:
    """What the operator reads of Airflow's RuntimeTaskInstance."""

    try_number: int
    max_tries: int = 10
    map_index: int = -1


def operator(step_key: str, storage_dir) -> DagsterOperator:
    return DagsterOperator(
        task_id=step_key,
        job_name="retry_requests",
        code_location={"python_file": JOB_FILE},
        storage={"name": "filesystem", "base_dir": str(storage_dir)},
        retries=10,
        dagster_retries_only=True,
    )


def run_try(task: DagsterOperator, try_number: int):
    context = {
        "ti": TaskInstance(try_number),
        "run_id": AIRFLOW_RUN_ID,
        "dag_run": None,
        "logical_date": None,
    }
    return task.execute(context)


def worker_attempt(task: DagsterOperator, storage_dir, attempt: int) -> int:
    """One attempt of the task's step by the real worker, as a runner starts it."""
    request = StepRequest(
        code_location=CodeLocation(python_file=JOB_FILE),
        job_name="retry_requests",
        step_key=task.step_key,
        run_id=dagster_run_id(task.dag_id, AIRFLOW_RUN_ID),
        storage=StorageSpec("filesystem", {"base_dir": str(storage_dir)}),
        attempt=attempt,
    )
    env = {**os.environ, REQUEST_ENV_VAR: request.to_json()}
    return subprocess.run([CLI, "execute-step"], env=env, capture_output=True).returncode


def test_a_retry_runs_only_after_dagsters_retry_request(tmp_path):
    asks = operator("asks_twice", tmp_path)
    assert worker_attempt(asks, tmp_path, 1) == 3  # up for retry
    storage = FilesystemStorage(str(tmp_path))
    run_id = dagster_run_id(asks.dag_id, AIRFLOW_RUN_ID)
    record = storage.uri(storage.key(run_id, "asks_twice", "outputs.json"))

    # Try 2 follows Dagster's request: the step runs (its second attempt asks again).
    with pytest.raises(StepUpForRetryError, match=r"failed on try 2 and is retried in 0\.2 s"):
        run_try(asks, 2)
    # Try 4 after try 3 ended with no word from Dagster (a lost worker): the step does not run.
    with pytest.raises(AirflowFailException) as refused:
        run_try(asks, 4)
    assert str(refused.value) == (
        "try 4 of Dagster step 'asks_twice' does not run: try 3 did not end with Dagster's "
        f"retry request (the step's record at {record!r} is of try 2: the worker of try 3 was "
        "lost), and Dagster retries a step only when it asks to; clear the task to run the step "
        "again."
    )

    # A failure Dagster does not retry: the next try does not run it either.
    plain = operator("plain_failure", tmp_path)
    assert worker_attempt(plain, tmp_path, 1) == 1
    with pytest.raises(AirflowFailException, match=r"record at '.*' says it ended 'failure'\)"):
        run_try(plain, 2)
    # No record at all: the worker of try 1 was lost before it wrote one.
    lost = r"there is no record of it at .*: its worker was lost\)"
    with pytest.raises(AirflowFailException, match=lost):
        run_try(operator("steady", tmp_path), 2)


def test_a_try_after_a_clear_runs_and_the_policy_fails_what_dagster_does_not_retry(tmp_path):
    # Cleared after try 3 (max_tries raised to 3 + 10): try 4 is a first attempt again.
    steady = operator("steady", tmp_path)
    context_ti = TaskInstance(4, max_tries=13)
    result = steady.execute(
        {"ti": context_ti, "run_id": AIRFLOW_RUN_ID, "dag_run": None, "logical_date": None}
    )
    assert result == {"result": steady_uri(steady, tmp_path)}
    # Its step succeeded: the next try is a run again by hand (`airflow tasks test`), no retry.
    storage = FilesystemStorage(str(tmp_path))
    run_id = dagster_run_id(steady.dag_id, AIRFLOW_RUN_ID)
    assert retry_refusal(storage, run_id, "steady", 5) is None

    policy = DagsterRetryPolicy(dagster_only=True)
    assert steady.retry_policy.dagster_only
    failed = policy.evaluate(StepFailedError("x"), try_number=1, max_tries=10)
    assert failed.action == RetryAction.FAIL
    assert policy.evaluate(StepUpForRetryError("x"), 1, 10).action == RetryAction.RETRY
    assert DagsterRetryPolicy.deserialize(policy.serialize()).dagster_only
    # A task the user wrote without it keeps Airflow's own retries.
    assert DagsterRetryPolicy().evaluate(TimeoutError(), 1, 10).action == RetryAction.DEFAULT


def steady_uri(task: DagsterOperator, storage_dir) -> str:
    storage = FilesystemStorage(str(storage_dir))
    return storage.uri(storage.key(dagster_run_id(task.dag_id, AIRFLOW_RUN_ID), "steady", "result"))
