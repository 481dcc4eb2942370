"""What a DagsterOperator's task does with its step's result: lineage, events, outcome, XCom.

Airflow side. The same after a step that ran in the worker and after a deferred step that
resumed: ``execute`` and ``execute_complete`` both end here.
"""

from __future__ import annotations

from typing import Any

from dagster_airflow.model import StepRequest
from dagster_airflow.step_result import SKIPPED, StepResult


def end_of_step(task: Any, context: Any, request: StepRequest, result: StepResult) -> Any:
    """The task's outcome for ``result``: raises for a failure, a retry or a skip; else its
    XCom (the outputs' URIs, a dynamic output's mapping keys, or a schedule's tick)."""
    from dagster_airflow.task import context as task_context
    from dagster_airflow.task import schedule as task_schedule
    from dagster_airflow.task.lineage import StepLineage
    from dagster_airflow.task.outcome import raise_for
    from dagster_airflow.task.run_end import SKIPPED_XCOM_KEY

    ti = context["ti"]
    task.step_lineage = StepLineage.from_events(
        request.job_name, request.step_key, request.run_id, result.events
    )
    if task.dagster_home and result.status == SKIPPED:  # for the end task's judgement
        ti.xcom_push(key=SKIPPED_XCOM_KEY, value=True)
    tick = task_schedule.tick_of(result, task.schedule) if task.schedule else None
    raise_for(result, request.step_key, ti, task.log)
    if tick is not None:
        return tick
    _record_asset_events(task, context, result.events)
    if task.mapping_keys_of:
        # What the mapped tasks downstream expand over, in the order the op yielded them.
        returned = result.mapping_keys.get(task.mapping_keys_of, [])
    else:
        returned = dict(result.outputs)
    setattr(task, task_context.RETURNED, returned)  # for the outputs link (ui/links.py)
    return returned


def _record_asset_events(task: Any, context: Any, events) -> None:
    """Give each Asset outlet's event (Airflow emits it as the task succeeds) the partition,
    metadata and checks of its Dagster materialization."""
    from airflow.sdk import Asset

    from dagster_airflow.assets import outlet_extras

    extras = outlet_extras(events)
    for outlet in task.outlets:
        if isinstance(outlet, Asset) and outlet.name in extras:
            context["outlet_events"][outlet].extra = extras[outlet.name]
