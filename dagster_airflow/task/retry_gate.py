"""Whether a retry of a task is one Dagster asked for (Airflow side).

Airflow fixes a task's number of tries when its run starts; Dagster decides at run time whether
to retry a step (`RetryRequested(max_retries=N)` has no policy the scaffold could read). So a
scaffolded task has tries enough for Dagster's retry requests (``dagster_retries_only``), and a
try after the first runs only when the attempt before it ended with Dagster's retry request, as
the step's record in the storage says (written by the worker, `worker/run_state.py`). Anything
else (a lost worker, a try that ended with no word from Dagster) is not retried, as Dagster
would not retry it; a step whose last attempt succeeded may run again (by hand).
"""

from __future__ import annotations

import json

from dagster_airflow.errors import OutputNotFoundError
from dagster_airflow.step_result import SKIPPED, SUCCESS, UP_FOR_RETRY
from dagster_airflow.storage.base import OUTPUTS_RECORD_NAME, IntermediateStorage


def retry_refusal(
    storage: IntermediateStorage, run_id: str, step_key: str, try_number: int
) -> str | None:
    """Why try ``try_number`` of the step must not run (one sentence), or None when the try
    before it ended with Dagster's retry request, or when the step's last attempt succeeded or
    was skipped: this try is then no retry but a run again by hand (`airflow tasks test`)."""
    key = storage.key(run_id, step_key, OUTPUTS_RECORD_NAME)
    where = storage.uri(key)
    previous = try_number - 1
    try:
        record = json.loads(storage.get_bytes(key).decode())
    except OutputNotFoundError:
        record = None
    if record is not None and record.get("status") in (SUCCESS, SKIPPED):
        return None
    if record is None:
        ended = f"there is no record of it at {where!r}: its worker was lost"
    elif record.get("attempt") != previous:
        ended = (
            f"the step's record at {where!r} is of try {record.get('attempt')!r}: the worker "
            f"of try {previous} was lost"
        )
    elif record.get("status") != UP_FOR_RETRY:
        ended = f"the step's record at {where!r} says it ended {record.get('status')!r}"
    else:
        return None
    return (
        f"try {try_number} of Dagster step {step_key!r} does not run: try {previous} did not "
        f"end with Dagster's retry request ({ended}), and Dagster retries a step only when "
        "it asks to; clear the task to run the step again."
    )
