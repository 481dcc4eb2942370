"""The Dagster instance a step runs against (Dagster side).

Without a Dagster home, each step has an ephemeral instance of its own: steps share nothing but
the run id and the intermediate storage, and the team's Dagster sees nothing. With one (the
request's ``dagster_home``, whose ``dagster.yaml`` names the team's instance), the DAG run is one
Dagster run there, as Dagster's own step workers share one (``dagster api execute_step``):

- the first step creates the run, under the run id every task derives from the Airflow run, with
  the whole job's snapshot and execution plan snapshot, and tags naming the Airflow DAG, the
  Airflow run and the DAG's plan fingerprint; steps that start together race to create it, and
  the losers take the winner's;
- each step writes its events to the instance's event log as it runs them (Dagster's log
  manager stores every event in the instance it is handed), so materializations, observations
  and check evaluations land in the asset catalog with the run id and the partition;
- the run is STARTED by the step that created it (and again by a step of a run that had ended:
  a cleared task runs again), and ended by the DAG's end task (``end_run``): SUCCESS, FAILURE or
  CANCELED, as the Airflow side judged the DAG run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.model import (
    RUN_CANCELED,
    RUN_FAILURE,
    TAG_PREFIX,
    StepRequest,
)

# Tags of the shared Dagster run: which Airflow DAG run it is.
DAG_ID_TAG = f"{TAG_PREFIX}/dag_id"
AIRFLOW_RUN_ID_TAG = f"{TAG_PREFIX}/airflow_run_id"
DAGSTER_YAML = "dagster.yaml"
# The next step's ephemeral instance, built ahead of it (prepare_ephemeral_instance).
_prepared: list[Any] = []


def team_instance(dagster_home: str) -> Any:
    """The team's DagsterInstance from ``dagster_home``'s dagster.yaml (a context manager that
    disposes of its connections). A home with no dagster.yaml is refused rather than given
    Dagster's default (SQLite files in that folder): it is a wrong path far more often than a
    team's instance."""
    from dagster import DagsterInstance

    if not os.path.isfile(os.path.join(dagster_home, DAGSTER_YAML)):
        raise ConfigurationError(
            f"the Dagster home {dagster_home!r} has no {DAGSTER_YAML}; set dagster_home (in the "
            "DAG's DEFAULT_ARGS, or scaffold --dagster-home) to the folder, as the step sees it, "
            "whose dagster.yaml names the team's instance."
        )
    return DagsterInstance.from_config(dagster_home)


def prepare_ephemeral_instance() -> None:
    """Build the next step's ephemeral instance ahead of it. The step server does, before it
    forks any step: each forked step then takes its own copy of that fresh instance (its
    in-memory SQLite databases are the process's memory, copied by the fork, which the server
    never writes to again) instead of building one, about 0.3 s of creating tables and reading
    Dagster's 178 migration scripts in every step."""
    from dagster import DagsterInstance

    _prepared[:] = [DagsterInstance.ephemeral()]


def _ephemeral_instance() -> Any:
    """The instance prepared ahead, once (a forked step's copy of it), else a new one."""
    if _prepared:
        return _prepared.pop()
    from dagster import DagsterInstance

    return DagsterInstance.ephemeral()


def run_tags(request: StepRequest) -> dict[str, str]:
    """The shared run's tags: the Airflow DAG and run, and what the DAG adds (its plan
    fingerprint). No task or attempt: those differ from step to step."""
    tags = dict(request.run_tags)
    if request.task is not None:
        tags |= {DAG_ID_TAG: request.task.dag_id, AIRFLOW_RUN_ID_TAG: request.task.run_id}
    return tags


@contextlib.contextmanager
def step_run(
    request: StepRequest,
    job: Any,
    full_plan: Any,
    step_plan: Any,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
) -> Iterator[tuple[Any, Any]]:
    """The instance and the Dagster run the step executes in: its own ephemeral run, tagged with
    the step's try, or the DAG run's in the team's instance. ``tags``: the partition's."""
    if request.dagster_home is None:
        instance = _ephemeral_instance()
        run = instance.create_run_for_job(
            job_def=job,
            execution_plan=step_plan,
            run_id=request.run_id,
            run_config=run_config,
            tags=step_tags(request) | dict(tags),
        )
        yield instance, run
        return
    with team_instance(request.dagster_home) as instance:
        yield instance, shared_run(instance, request, job, full_plan, run_config, tags)


def shared_run(
    instance: Any,
    request: StepRequest,
    job: Any,
    full_plan: Any,
    run_config: Mapping[str, Any],
    partition_tags: Mapping[str, str],
) -> Any:
    """The DAG run's Dagster run in the team's instance: created by the first step, STARTED by
    the step that created it or by a step of a run that had ended."""
    from dagster_airflow.job.dagster_compat import DagsterRunAlreadyExists

    run = instance.get_run_by_id(request.run_id)
    created = False
    if run is None:
        try:
            run = instance.create_run_for_job(
                job_def=job,
                execution_plan=full_plan,
                run_id=request.run_id,
                run_config=run_config,
                tags=run_tags(request) | dict(partition_tags),
            )
            created = True
        except DagsterRunAlreadyExists:  # a step that started beside this one made it first
            run = instance.get_run_by_id(request.run_id)
    if created or run.is_finished:
        _report(instance, run, "RUN_START", _started_message(request, created))
        run = instance.get_run_by_id(request.run_id)
    return run


def step_tags(request: StepRequest) -> dict[str, str]:
    """The tags of a step's own ephemeral run: its Airflow try."""
    tags = {f"{TAG_PREFIX}/attempt": str(request.attempt)}
    if request.task:
        task = request.task
        tags |= {
            DAG_ID_TAG: task.dag_id,
            f"{TAG_PREFIX}/task_id": task.task_id,
            AIRFLOW_RUN_ID_TAG: task.run_id,
        }
    return tags


def record_skip(
    request: StepRequest,
    job: Any,
    full_plan: Any,
    run_config: Mapping[str, Any],
    partition_tags: Mapping[str, str],
    printer: Any,
) -> None:
    """A step the worker skipped (an optional output not produced upstream), in the team's
    event log as Dagster's executor records a skip (nothing to do with an ephemeral instance)."""
    if request.dagster_home is None:
        return
    with step_run(request, job, full_plan, full_plan, run_config, partition_tags) as (
        instance,
        run,
    ):
        _report(instance, run, "STEP_SKIPPED", printer.events[-1].message, request.step_key)


def _started_message(request: StepRequest, created: bool) -> str:
    task = request.task
    where = f"Airflow DAG {task.dag_id!r}, run {task.run_id!r}" if task else "Airflow"
    if created:
        return f"Started by {where}: each task runs one step of this run."
    return f"Started again by {where}: task {request.step_key!r} runs again."


def _report(
    instance: Any, run: Any, event_type: str, message: str, step_key: str | None = None
) -> None:
    """One event of the run (of its step ``step_key``) in the instance's event log."""
    from dagster_airflow.job.dagster_compat import DagsterEvent, DagsterEventType

    event = DagsterEvent(
        event_type_value=DagsterEventType[event_type].value,
        job_name=run.job_name,
        step_key=step_key,
        message=message,
    )
    instance.report_dagster_event(event, run_id=run.run_id)


def end_run(request: StepRequest) -> str:
    """The DAG's end task: end the shared run as the Airflow side judged the DAG run (the
    request's run_end). Runs no step; returns what it did, in a sentence."""
    if request.dagster_home is None:
        raise ConfigurationError(
            f"task {request.step_key!r} ends the DAG run's Dagster run, but the DAG sets no "
            "dagster_home; set it in DEFAULT_ARGS, or remove the task."
        )
    with team_instance(request.dagster_home) as instance:
        run = instance.get_run_by_id(request.run_id)
        if run is None:
            return (
                f"No Dagster run {request.run_id} in the instance: no step of this DAG run "
                "started, so there is no run to end."
            )
        if request.run_end == RUN_FAILURE:
            instance.report_run_failed(run, "The Airflow DAG run failed: a task failed for good.")
        elif request.run_end == RUN_CANCELED:
            instance.report_run_canceled(run, "The Airflow DAG run was stopped before it ended.")
        else:
            _report(instance, run, "RUN_SUCCESS", "Every task of the Airflow DAG run ended well.")
    return f"Dagster run {request.run_id} ended: {request.run_end.upper()}."


@contextlib.contextmanager
def without_fallback_console_logger() -> Iterator[None]:
    """Dagster's console logger silenced, the user's run config untouched.

    The worker prints every event itself, as a JSON line the runner renders readably; the console
    logger would print each one a second time. When a run config names no loggers, Dagster falls
    back to a colored console logger that no job definition replaces (`default_system_loggers`
    in context creation), and adding a `loggers` entry to the run config breaks jobs with a
    ConfigMapping or a partitioned config. So the fallback makes no logger in this process; a
    run config that names loggers still gets them.
    """
    from dagster_airflow.job.dagster_compat import context_creation_job

    fallback = context_creation_job.default_system_loggers
    context_creation_job.default_system_loggers = lambda instance: []
    try:
        yield
    finally:
        context_creation_job.default_system_loggers = fallback
