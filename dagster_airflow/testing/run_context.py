"""The RunContext a test or a script hands a runner it drives directly, as a task would have it.

    with TaskLog() as task_log:
        result = runner.run(request, run_context_for(request, task_log.logger))

The operator builds a task's context itself (dagster_airflow.task.context.for_task); outside a
task, this one has the request's storage (None when it cannot be built here) and Airflow's
connections and masking, so it imports Airflow: a test kit's concern, never a runner's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from dagster_airflow.model import StepRequest
from dagster_airflow.runners.base import StepRunner
from dagster_airflow.runners.context import RunContext
from dagster_airflow.step_result import StepResult


def run_context_for(
    request: StepRequest,
    log: logging.Logger,
    secret_env: Mapping[str, str] | None = None,
    job_env: Mapping[str, str] | None = None,
) -> RunContext:
    """The context of a runner driven directly: ``secret_env`` as the storage's credentials,
    ``job_env`` as the job's variables (a DAG's ENVIRONMENT, rendered)."""
    from dagster_airflow.task.context import outside_task

    return outside_task(request, log, dict(secret_env or {}), dict(job_env or {}))


def run_step(
    runner: StepRunner,
    request: StepRequest,
    log: logging.Logger,
    secret_env: Mapping[str, str] | None = None,
    job_env: Mapping[str, str] | None = None,
) -> StepResult:
    """``runner.run(request, run_context_for(request, log, secret_env, job_env))``."""
    return runner.run(request, run_context_for(request, log, secret_env, job_env))
