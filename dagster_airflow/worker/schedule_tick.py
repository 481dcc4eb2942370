"""A tick of a job's Dagster schedule, evaluated in a step's process (Dagster side).

The first task of a DAG run whose schedule computes its run request sends a StepRequest with
``schedule_name`` set. The worker evaluates that schedule at the run's logical date, as Dagster's
daemon evaluates a tick, and answers with one ``SCHEDULE_TICK`` event whose metadata is the
ScheduleTick (the run config and tags of this run, or why it skips), then ``STEP_SUCCESS``. An
error in the schedule's function is the step's failure, final as a failed tick is in Dagster.
"""

from __future__ import annotations

import time

from dagster_airflow.model import StepRequest
from dagster_airflow.step_result import EXIT_NO_RETRY, EXIT_SUCCESS, StepEvent

TICK_EVENT = "SCHEDULE_TICK"


def evaluate_for_request(request: StepRequest, printer) -> int:
    """Evaluate the request's schedule tick, print its events; the worker's exit code."""
    from dagster_airflow.errors import RunConfigError
    from dagster_airflow.job.code_location import repository_of
    from dagster_airflow.job.schedules import tick_for_run

    key = request.step_key
    try:
        if not request.logical_date:
            raise RunConfigError(
                f"the DAG run has no logical date to evaluate schedule {request.schedule_name!r} "
                "at; trigger it with a logical date."
            )
        repository = repository_of(request.code_location, request.job_name)
        tick = tick_for_run(
            repository, request.job_name, request.schedule_name, request.logical_date
        )
    except Exception as exc:  # the schedule's own error: the tick failed, as in Dagster
        root = exc
        while root.__cause__ is not None:  # the user's error, not Dagster's wrapper of it
            root = root.__cause__
        printer.not_retryable = True
        printer.fail(
            exc,
            f"schedule {request.schedule_name!r} failed to evaluate its tick at "
            f"{request.logical_date}: {type(root).__name__}: {root}",
        )
        return EXIT_NO_RETRY
    what = (
        tick.skip_reason
        or f"schedule {request.schedule_name!r} requested a run at {request.logical_date}"
    )
    now = time.time()
    printer.emit(StepEvent(TICK_EVENT, what, step_key=key, timestamp=now, metadata=tick.to_dict()))
    done = f"tick of schedule {request.schedule_name!r} at {request.logical_date} evaluated."
    printer.emit(StepEvent("STEP_SUCCESS", done, step_key=key, timestamp=now))
    return EXIT_SUCCESS
