"""A remote step deferred to Airflow's triggerer: the worker's slot is held only to start the
step and to finish it (Airflow side).

``execute`` starts the run (``RemoteRunner.begin``) and defers to RemoteStepTrigger
(dagster_airflow.task.trigger), which follows it in the triggerer; ``execute_complete`` resumes
in a worker once it ended and reads its result (``RemoteRunner.resume``). A runner that is not
a RemoteRunner (the subprocess runner), or sets ``deferrable = False``, runs as before.

On by default; off for a task with ``deferrable=False`` (or in the DAG's DEFAULT_ARGS), or for
the whole deployment with ``[dagster_airflow] deferrable = False`` in airflow.cfg
(``AIRFLOW__DAGSTER_AIRFLOW__DEFERRABLE=False``): a deployment without a triggerer needs that.
"""

from __future__ import annotations

import datetime
from typing import Any

from dagster_airflow.runners.lifecycle import DeferredRun, RemoteRunner
from dagster_airflow.step_result import StepResult
from dagster_airflow.task.step_request import StepToRun, step_to_run

# The operator's method a deferred task resumes with.
RESUME_METHOD = "execute_complete"
CONFIG_SECTION, CONFIG_KEY = "dagster_airflow", "deferrable"


def defers(task: Any, runner: Any) -> bool:
    """Whether ``task`` defers its step while it runs: its runner can, and neither the task
    (``deferrable``) nor the deployment's configuration turned it off."""
    if not isinstance(runner, RemoteRunner) or not runner.deferrable:
        return False
    if task.deferrable is not None:
        return bool(task.deferrable)
    from dagster_airflow.task.airflow_compat import conf

    return conf.getboolean(CONFIG_SECTION, CONFIG_KEY, fallback=True)


def defer_step(task: Any, context: Any, step: StepToRun) -> StepResult:
    """Start the step's run and defer the task to the triggerer (raises Airflow's
    TaskDeferred); returns only the result of a step killed before it started."""
    from dagster_airflow.task.trigger import RemoteStepTrigger

    started = step.runner.begin(step.request, step.run_context)
    if isinstance(started, StepResult):
        return started
    task.log.info(
        "Deferring to the triggerer while the step's %s runs: the worker's slot is free "
        "until it ends",
        step.runner.run_noun,
    )
    trigger = RemoteStepTrigger(
        runner=step.resolved.runner_spec.to_dict(),
        request=step.request.to_json(),
        run=started.to_dict(),
        deadline=_deadline(task, context),
    )
    task.defer(trigger=trigger, method_name=RESUME_METHOD)
    raise AssertionError("defer() returned")  # pragma: no cover - defer always raises


def resume_step(task: Any, context: Any, event: dict[str, Any]) -> tuple[StepToRun, StepResult]:
    """The deferred step's result, once the trigger saw its run end; the run is cleaned up.
    Raises AirflowTaskTimeout where the trigger stopped it at the task's execution_timeout."""
    from dagster_airflow.task.airflow_compat import AirflowTaskTimeout
    from dagster_airflow.task.trigger import FAILED, TIMED_OUT

    step = step_to_run(task, context, gate=False)
    task._step_runner = step.runner  # what on_kill stops
    if event.get(FAILED):
        task.log.warning(
            "The triggerer could not follow the step (%s); the task follows it here",
            event[FAILED],
        )
    run = DeferredRun.from_dict(event["run"])
    result = step.runner.resume(step.request, step.run_context, run)
    if event.get(TIMED_OUT):
        raise AirflowTaskTimeout(
            f"the task ran longer than its execution_timeout of {task.execution_timeout}, so "
            f"its {step.runner.run_noun} was stopped"
        )
    return step, result


def _deadline(task: Any, context: Any) -> float | None:
    """When the task's execution_timeout ends (Airflow 3.3 does not apply it to a deferred
    task's wait: the trigger does), counted from the start of this try."""
    if not task.execution_timeout:
        return None
    start = getattr(context["ti"], "start_date", None)
    if not isinstance(start, datetime.datetime):
        start = datetime.datetime.now(datetime.UTC)
    return (start + task.execution_timeout).timestamp()
