"""A step's result as the outcome of its Airflow task: return, skip, retry, fail, fail at once.

Airflow side. Dagster decides whether a failed step is retried (its RetryPolicy, a RetryRequested)
and how long to wait; Airflow counts the tries. A step up for retry raises StepUpForRetryError,
which `DagsterRetryPolicy`, every DagsterOperator's Airflow ``retry_policy``, turns into a retry
after exactly Dagster's delay (its backoff and jitter included). A failure no retry can change
raises AirflowFailException, so the task fails at once whatever its retries.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

from dagster_airflow.errors import StepFailedError, StepUpForRetryError
from dagster_airflow.task.airflow_compat import (
    AirflowFailException,
    AirflowSkipException,
    RetryDecision,
    RetryPolicy,
)

if TYPE_CHECKING:
    from dagster_airflow.step_result import StepResult


class DagsterRetryPolicy(RetryPolicy):
    """Retries a task whose Dagster step is up for retry after Dagster's own delay; anything
    else takes Airflow's standard path (the task's ``retries`` and ``retry_delay``), or, with
    ``dagster_only`` (a scaffolded task), fails at once: Dagster would not retry it.

    Airflow still bounds the number of tries by the task's ``retries``: a policy can shorten
    them, never add one.
    """

    def __init__(self, dagster_only: bool = False) -> None:
        self.dagster_only = dagster_only

    def evaluate(self, exception, try_number, max_tries, context=None) -> RetryDecision:
        if isinstance(exception, StepUpForRetryError):
            delay = datetime.timedelta(seconds=exception.seconds_to_wait or 0)
            return RetryDecision.retry(delay=delay, reason="the Dagster step is up for retry")
        if self.dagster_only:
            return RetryDecision.fail(reason="Dagster does not retry this failure")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"__type": "DagsterRetryPolicy", "dagster_only": self.dagster_only}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> DagsterRetryPolicy:
        return cls(bool(data.get("dagster_only", False)))


def retry_number(try_number: int, max_tries: int, retries: int) -> int:
    """Dagster's ``context.retry_number`` for an Airflow try: the tries before it since the
    task's last clear (a clear raises ``max_tries`` to the try number plus ``retries``)."""
    first_try = max_tries - retries + 1
    return min(max(try_number - first_try, 0), max(try_number - 1, 0))


def has_try_left(ti: Any) -> bool:
    """Whether Airflow will run another try of this task instance if this one fails."""
    return ti.max_tries != 0 and ti.try_number <= ti.max_tries


def raise_for(result: StepResult, step_key: str, ti: Any, log: logging.Logger) -> None:
    """Raise what makes Airflow do with the task what Dagster does with the step."""
    # Here, not at module level: the DAG processor builds the retry policy, never an outcome.
    from dagster_airflow.step_log import op_error
    from dagster_airflow.step_result import FAILURE, SKIPPED, UP_FOR_RETRY

    if result.status == SKIPPED:
        raise AirflowSkipException(f"Dagster step {step_key!r} was skipped.")
    if result.status == UP_FOR_RETRY:
        cause = op_error(result.error).summary() if result.error else "no error was reported"
        if not has_try_left(ti):
            log.error(
                "Dagster retries step %r, but its task has no Airflow try left (try %s of %s): "
                "Airflow counts the tries, so give the task retries=N in the DAG file (or raise "
                '"retries" in its DEFAULT_ARGS), N being the max_retries of the op\'s '
                "RetryRequested or RetryPolicy.",
                step_key,
                ti.try_number,
                ti.max_tries + 1,
            )
            raise StepFailedError(f"Dagster step {step_key!r} failed: {cause}")
        wait = f"in {result.seconds_to_wait:g} s" if result.seconds_to_wait else "at once"
        raise StepUpForRetryError(
            f"Dagster step {step_key!r} failed on try {ti.try_number} and is retried {wait}: "
            f"{cause}",
            result.seconds_to_wait,
        )
    if result.status == FAILURE:
        error = result.error.summary() if result.error else "no error was reported"
        message = f"Dagster step {step_key!r} failed: {error}"
        if not result.retryable:
            raise AirflowFailException(message)
        raise StepFailedError(message)
