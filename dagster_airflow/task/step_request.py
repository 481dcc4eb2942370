"""What a DagsterOperator's task runs: its runner, its StepRequest and its run context.

Airflow side. Built in ``execute``, and built again, the same, when a deferred task resumes
(``execute_complete``): everything here follows from the task, its DAG run and its try, so a
resumed task rebuilds the request it deferred with rather than keeping it in Airflow's
database.
"""

from __future__ import annotations

from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError, PluginError, RunConfigError
from dagster_airflow.model import CodeLocation, StepRequest, TaskRef, dagster_run_id
from dagster_airflow.runners.context import RunContext
from dagster_airflow.task import context as task_context
from dagster_airflow.task.airflow_compat import AirflowFailException


@attrs.frozen
class StepToRun:
    """A task's step, ready for its runner."""

    request: StepRequest
    resolved: task_context.Resolved
    runner: Any  # the StepRunner, built with the task's options
    run_context: RunContext


def step_to_run(task: Any, context: Any, gate: bool = True) -> StepToRun:
    """The step of ``task`` (a DagsterOperator) in this Airflow try. A misconfigured task
    fails at once (AirflowFailException): no retry would fix it. ``gate``: refuse a retry that
    Dagster would not make (dagster_retries_only); a resumed try already passed it."""
    ti = context["ti"]
    try:
        resolved = task_context.resolve(task.runner, task.storage)
        job_env = task_context.job_environment(task.environment, task.job_name, resolved.runner.cls)
        # The storage, once: the links read it too.
        setattr(task, task_context.RESOLVED, resolved)
        runner = resolved.runner.create(resolved.runner_spec.options)
        request = _request(task, context, resolved)
    except (ConfigurationError, PluginError, RunConfigError) as exc:
        raise AirflowFailException(f"task {task.task_id!r}: {exc}") from exc
    if gate and task.dagster_retries_only and request.previous_attempts > 0:
        from dagster_airflow.task.retry_gate import retry_refusal

        refusal = retry_refusal(resolved.storage, request.run_id, request.step_key, ti.try_number)
        if refusal:
            raise AirflowFailException(refusal)
    # Again: a mapped task's rendering (MappedOperator's) does not call render_template_fields.
    task_context.mask_templated(task.runner, task.runner_source)
    task_context.mask_templated(task.environment, task.environment_source)
    if request.dagster_home and task.dagster_ui_url:  # the run in the team's Dagster UI
        ui_url = task.dagster_ui_url.rstrip("/")
        task_context.push_dagster_run_url(f"{ui_url}/runs/{request.run_id}")
    secret_env = resolved.storage.credentials_env(task_context.connection)
    run_context = task_context.for_task(task.log, resolved.storage, secret_env, job_env)
    return StepToRun(request, resolved, runner, run_context)


def _request(task: Any, context: Any, resolved: task_context.Resolved) -> StepRequest:
    from dagster_airflow.run_conf import PARTITION_KEY, run_config_for_run, run_tags_from_conf
    from dagster_airflow.task import schedule as task_schedule
    from dagster_airflow.task.outcome import retry_number

    ti = context["ti"]
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    logical_date = context.get("logical_date")
    # This run's tick of the job's schedule, when a schedule function decides the run.
    tick = task_schedule.pulled_tick(context, task.schedule_tick) if task.schedule_tick else {}
    run_config, source = task.run_config, task.run_config_source
    run_tags = task.run_tags | run_tags_from_conf(conf) | tick.get("tags", {})
    if "run_config" in tick:
        run_config = source = tick["run_config"]
    request = StepRequest(
        code_location=CodeLocation.from_dict(task.code_location),
        job_name=task.job_name,
        step_key=task.dagster_step_key,
        run_id=dagster_run_id(task.dag_id, context["run_id"]),
        run_config=run_config_for_run(
            run_config, source, conf, task.setting("run_config_schema") or {}
        ),
        storage=resolved.storage_spec,
        attempt=ti.try_number,
        task=TaskRef(task.dag_id, task.task_id, context["run_id"], ti.map_index, ti.try_number),
        retry_number=retry_number(ti.try_number, ti.max_tries, task.retries or 0),
        partition_key=conf.get(PARTITION_KEY) or tick.get("partition_key"),
        logical_date=logical_date.isoformat() if logical_date else None,
        schedule_name=task.schedule,
        **_instance_fields(task, ti, run_tags),
    )
    if task.schedule:
        request = attrs.evolve(request, logical_date=task_schedule.evaluation_time(context))
    return request


def _instance_fields(task: Any, ti: Any, run_tags: dict[str, str]) -> dict[str, Any]:
    """The request's run tags (``run_tags``: a schedule's), and its fields for the team's
    Dagster instance (none without dagster_home): the home, the run's tags of that instance,
    and for the end task how the DAG run ended."""
    from dagster_airflow.task.run_end import dag_run_end, plan_fingerprint_tags

    if task.ends_dagster_run and not task.dagster_home:
        raise ConfigurationError(
            f"task {task.task_id!r} ends the DAG run's Dagster run, but the DAG sets no "
            "dagster_home; set it in DEFAULT_ARGS, or remove the task."
        )
    if not task.dagster_home:
        return {"run_tags": run_tags}
    fingerprint = plan_fingerprint_tags(task.dag.doc_md if task.has_dag() else None)
    fields: dict[str, Any] = {"dagster_home": task.dagster_home, "run_tags": run_tags | fingerprint}
    if task.ends_dagster_run:
        fields["run_end"] = dag_run_end(ti)
        task.log.info("The DAG run ended: %s; so ends its Dagster run.", fields["run_end"])
    return fields
