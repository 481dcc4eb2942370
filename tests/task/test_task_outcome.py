"""A step's result as its Airflow task's outcome: what the operator raises, and the retry
decision Airflow's task runner takes from DagsterOperator's retry policy."""

from __future__ import annotations

import datetime
import logging

import attrs
import pytest
from airflow.sdk.definitions.retry_policy import RetryAction
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dagster_airflow.errors import StepFailedError, StepUpForRetryError
from dagster_airflow.operator import DagsterOperator
from dagster_airflow.step_result import (
    EXIT_FAILURE,
    EXIT_NO_RETRY,
    EXIT_UP_FOR_RETRY,
    FAILURE,
    SKIPPED,
    UP_FOR_RETRY,
    StepError,
    StepResult,
)
from dagster_airflow.task.outcome import DagsterRetryPolicy, raise_for, retry_number

OP_ERROR = StepError(
    "RetryRequestedFromPolicy", "", cause=StepError("ValueError", "flaky fails on attempt 0")
)


@attrs.frozen
class TryOf:
    """The two numbers of Airflow's RuntimeTaskInstance that decide whether a try is left."""

    try_number: int
    max_tries: int


def test_up_for_retry_raises_the_ops_own_error_and_the_policy_waits_dagsters_delay():
    result = StepResult(UP_FOR_RETRY, EXIT_UP_FOR_RETRY, error=OP_ERROR, seconds_to_wait=0.6)
    with pytest.raises(StepUpForRetryError) as raised:
        raise_for(result, "flaky", TryOf(2, 3), logging.getLogger("test"))
    assert str(raised.value) == (
        "Dagster step 'flaky' failed on try 2 and is retried in 0.6 s: "
        "ValueError: flaky fails on attempt 0"
    )
    decision = DagsterRetryPolicy().evaluate(raised.value, try_number=2, max_tries=3)
    assert decision.action == RetryAction.RETRY
    assert decision.retry_delay == datetime.timedelta(seconds=0.6)
    # RetryRequested without seconds_to_wait: Dagster retries at once.
    at_once = DagsterRetryPolicy().evaluate(StepUpForRetryError("x"), try_number=1, max_tries=1)
    assert at_once.retry_delay == datetime.timedelta(0)
    # Any other error takes Airflow's own path (the task's retries and retry_delay).
    other = DagsterRetryPolicy().evaluate(StepFailedError("x"), try_number=1, max_tries=1)
    assert other.action == RetryAction.DEFAULT


def test_up_for_retry_with_no_try_left_fails_and_says_what_to_write(caplog):
    result = StepResult(UP_FOR_RETRY, EXIT_UP_FOR_RETRY, error=OP_ERROR, seconds_to_wait=None)
    with pytest.raises(StepFailedError) as raised:
        raise_for(result, "flaky", TryOf(1, 0), logging.getLogger("test"))
    assert not isinstance(raised.value, StepUpForRetryError)
    assert "ValueError: flaky fails on attempt 0" in str(raised.value)
    assert "its task has no Airflow try left (try 1 of 1)" in caplog.text
    assert "give the task retries=N in the DAG file" in caplog.text


def test_final_failures_fail_at_once_and_others_follow_the_tasks_retries():
    error = StepError("RetryRequestedFromPolicy", "Exceeded max_retries of 1", cause=OP_ERROR)
    log = logging.getLogger("test")
    with pytest.raises(AirflowFailException, match="Exceeded max_retries of 1"):
        raise_for(StepResult(FAILURE, EXIT_NO_RETRY, error=error), "flaky", TryOf(2, 1), log)
    with pytest.raises(StepFailedError, match="ValueError: flaky fails"):
        raise_for(StepResult(FAILURE, EXIT_FAILURE, error=OP_ERROR), "flaky", TryOf(1, 2), log)
    with pytest.raises(AirflowSkipException):
        raise_for(StepResult(SKIPPED, 0), "flaky", TryOf(1, 0), log)


def test_retry_number_counts_the_tries_since_the_last_clear():
    assert [retry_number(t, max_tries=3, retries=3) for t in (1, 2, 3, 4)] == [0, 1, 2, 3]
    # Cleared after try 4 with retries=3: Airflow raised max_tries to 4 + 3.
    assert [retry_number(t, max_tries=7, retries=3) for t in (5, 6)] == [0, 1]
    # No retries: always the first attempt, however often the task was cleared.
    assert retry_number(9, max_tries=8, retries=0) == 0


def test_every_dagster_operator_has_the_dagster_retry_policy_unless_given_another():
    job = {"job_name": "j", "code_location": {"module_name": "m"}}
    task = DagsterOperator(task_id="t", step_key="t", **job)
    assert isinstance(task.retry_policy, DagsterRetryPolicy)
    assert task.retries == 0
    mine = DagsterRetryPolicy()
    assert DagsterOperator(task_id="u", step_key="u", retry_policy=mine, **job).retry_policy is mine


PARSE_THEN_FAIL = """
import json, sys
from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization
from dagster_airflow import DagsterOperator
args = {"job_name": "j", "code_location": {"module_name": "m"}, "dagster_retries_only": True}
with DAG("parsed", schedule=None, default_args=args) as dag:
    fan_out = DagsterOperator(task_id="t", mapping_keys_of="result")
    DagsterOperator.partial(task_id="m", step_key="m[?]").expand(mapping_key=fan_out.output)
lazy = ("airflow.sdk.definitions.retry_policy", "dagster_airflow.task.outcome")
at_parse = [m for m in (*lazy, "dagster_airflow.ui.links") if m in sys.modules]
tasks = DagSerialization.to_dict(dag)["dag"]["tasks"]
flag = tasks[0]["__var"].get("has_retry_policy")
links = [sorted(t["__var"]["_operator_extra_links"]) for t in tasks]
after_serialize = [m for m in lazy if m in sys.modules]
policy = dag.task_dict["t"].retry_policy  # what Airflow's task runner asks as the task fails
kind = type(policy).__name__
print(json.dumps([at_parse, flag, links, after_serialize, kind, policy.dagster_only]))
"""


def test_a_parse_builds_no_retry_policy_nor_links_and_a_failing_task_gets_its_policy():
    """The dag-processor builds every task at each parse and never evaluates a retry policy
    nor computes a link: the policy (Airflow's module and ours) comes when the task runner first
    asks for it, the links (Airflow's BaseOperatorLink and ours) when Airflow serializes them."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PARSE_THEN_FAIL], capture_output=True, text=True, check=True
    )
    at_parse, flag, links, after_serialize, kind, dagster_only = json.loads(
        done.stdout.strip().splitlines()[-1]
    )
    assert at_parse == after_serialize == []
    assert flag is True  # what Airflow stores says the task has a policy
    # Every task, the mapped one too, shows the three buttons.
    assert links == [["Dagster event log", "Dagster outputs", "Dagster run"]] * 2
    assert (kind, dagster_only) == ("DagsterRetryPolicy", True)
