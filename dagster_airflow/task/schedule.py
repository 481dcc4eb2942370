"""A DAG run's tick of its Dagster schedule, as the Airflow tasks see it (Airflow side).

The tick task (a DagsterOperator with ``schedule=NAME``) has its runner evaluate the schedule on
the Dagster side at the run's logical date (dagster_airflow.worker.schedule_tick) and returns the
tick as its XCom: plain data, the run config and tags of this run. A SkipReason skips it with the
reason as its one line. Each step task (``schedule_tick=TASK_ID``) takes that run config and
those tags instead of the DAG's; when the tick skipped, it skips too.
"""

from __future__ import annotations

from typing import Any

from dagster_airflow.task.airflow_compat import AirflowSkipException

TICK_EVENT = "SCHEDULE_TICK"  # the worker's event (dagster_airflow.worker.schedule_tick)


def evaluation_time(context: Any) -> str | None:
    """When the tick is evaluated: the run's logical date, else (a run triggered without
    one) when it was due to run."""
    moment = context.get("logical_date")
    if moment is None:
        moment = getattr(context.get("dag_run"), "run_after", None)
    return moment.isoformat() if moment is not None else None


def tick_of(result: Any, schedule: str) -> dict[str, Any]:
    """The tick the worker reported, as the task's XCom; a skip raises AirflowSkipException
    with the schedule's reason."""
    tick = next((e.metadata for e in result.events if e.event_type == TICK_EVENT), None)
    if tick is None:
        return {}  # the step failed first: raise_for says how
    if tick.get("skip_reason"):
        raise AirflowSkipException(tick["skip_reason"])
    return tick


def pulled_tick(context: Any, tick_task: str) -> dict[str, Any]:
    """This run's tick, from the tick task's XCom; a skipped tick skips the task."""
    tick = context["ti"].xcom_pull(task_ids=tick_task)
    if not tick:
        raise AirflowSkipException(
            f"the Dagster schedule's tick (task {tick_task!r}) asked for no run at this date."
        )
    return tick
