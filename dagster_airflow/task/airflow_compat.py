"""What differs between the Airflow versions we support (3.1, 3.2, 3.3), in one place: the
operator, task/ and ui/ import these names from here, and a new Airflow minor is a change to this
file (and a row of the support table in docs/install.md, written by `make test-compat`).

Airflow side. Measured on Airflow 3.1.8, 3.2.2 and 3.3.2:

- ``airflow.sdk.exceptions`` (AirflowFailException, AirflowSkipException,
  AirflowNotFoundException, AirflowTaskTimeout) is new in 3.2; 3.1 has the same classes in
  ``airflow.exceptions``
  (3.2 and 3.3 keep them there as deprecated aliases of the same classes).
- ``airflow.sdk.configuration.conf`` is new in 3.2; 3.1 has ``airflow.configuration.conf``.
- ``airflow.sdk.CronTriggerTimetable`` is new in 3.2; ``airflow.timetables.trigger`` has it in
  every version (3.3's SDK class is its own: use the SDK's wherever there is one).
- A task's ``retry_policy`` (``airflow.sdk.definitions.retry_policy``) is new in 3.3. Before it
  a DagsterOperator gets none: a step Dagster retries is retried by Airflow after the task's
  ``retry_delay`` (the RetryPolicy's delay, backoff as Airflow computes it, no jitter; for a
  bare ``RetryRequested``, the task's retry_delay rather than its seconds_to_wait).
- ``retry_exponential_backoff`` is a multiplier (a float) from 3.2 on, a bool in 3.1: the
  scaffold writes the multiplier, and the operator hands 3.1 a bool.
- A task's ``TriggerDagRun`` (the execution API's request, as TriggerDagRunOperator sends it)
  takes a ``note`` from 3.2 on; 3.1 refuses the field: a sensor DAG's runs get no note there
  (their tags are still in ``conf["dagster_tags"]``).
"""

from __future__ import annotations

from typing import Any

import airflow

# (3, 1) on Airflow 3.1.8: what differs by version and has no name to import to tell it.
AIRFLOW_MINOR = tuple(int(part) for part in airflow.__version__.split(".")[:2])
try:
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
        AirflowTaskTimeout,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
        AirflowTaskTimeout,
    )

# A task's retry_policy is new in 3.3. Told by the version, not by importing its module: the
# operator asks at every parse of a DAG file, and builds a task's policy only when the task runs.
HAS_RETRY_POLICY = AIRFLOW_MINOR >= (3, 3)


def _retry_policy_names() -> dict[str, Any]:
    """Airflow's RetryPolicy and RetryDecision (3.3 on); before 3.3, a stand-in base class, so
    that DagsterRetryPolicy still defines (no task gets one), and no RetryDecision."""
    if HAS_RETRY_POLICY:
        from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy

        return {"RetryPolicy": RetryPolicy, "RetryDecision": RetryDecision}

    class RetryPolicy:
        """Stands in for Airflow 3.3's base class before 3.3."""

    return {"RetryPolicy": RetryPolicy, "RetryDecision": None}


def task_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A DagsterOperator's BaseOperator arguments as this Airflow takes them: on 3.1, whose
    ``retry_exponential_backoff`` is a bool, the scaffold's multiplier (2.0) as True (Airflow 3.1
    doubles the delay, the same)."""
    backoff = kwargs.get("retry_exponential_backoff")
    if (
        AIRFLOW_MINOR < (3, 2)
        and isinstance(backoff, int | float)
        and not isinstance(backoff, bool)
    ):
        kwargs["retry_exponential_backoff"] = backoff > 0
    return kwargs


def trigger_dag_run_request(**fields: Any) -> Any:
    """The execution API's TriggerDagRun with the fields this Airflow takes: ``note`` is dropped
    on 3.1, whose request has none (and refuses any field it does not know)."""
    from airflow.sdk.execution_time.comms import TriggerDagRun

    known = {k: v for k, v in fields.items() if k in TriggerDagRun.model_fields}
    return TriggerDagRun(**known)


def __getattr__(name: str) -> Any:
    # Lazy: the operator imports this module in every DAG file's parse, and only a partitioned
    # job's DAG file needs the timetable, only a link the configuration, only a running task
    # the retry policy.
    if name in ("RetryPolicy", "RetryDecision"):
        found = _retry_policy_names()
        globals().update(found)
        return found[name]
    if name == "CronTriggerTimetable":
        try:
            from airflow.sdk import CronTriggerTimetable
        except ImportError:  # Airflow 3.1
            from airflow.timetables.trigger import CronTriggerTimetable
        return CronTriggerTimetable
    if name == "CoreCronTriggerTimetable":  # the scheduler's class, which ours subclasses
        from airflow.timetables.trigger import CronTriggerTimetable

        return CronTriggerTimetable
    if name == "DagRunInfo":
        from airflow.timetables.base import DagRunInfo

        return DagRunInfo
    if name == "ErrorType":  # the execution API's error kinds (the same in 3.1 to 3.3)
        from airflow.sdk.exceptions import ErrorType

        return ErrorType
    if name == "conf":
        try:
            from airflow.sdk.configuration import conf
        except ImportError:  # Airflow 3.1
            from airflow.configuration import conf
        return conf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# CronTriggerTimetable, CoreCronTriggerTimetable, DagRunInfo, ErrorType, conf, RetryPolicy and
# RetryDecision come from __getattr__ above.
__all__ = [
    "AIRFLOW_MINOR",
    "HAS_RETRY_POLICY",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "task_arguments",
    "trigger_dag_run_request",
]
