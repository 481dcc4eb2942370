"""What a step leaves in the storage beside its outputs, once it ended (Dagster side): its record
(what it yielded and how the attempt ended) and its event log (every attempt's events)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from dagster_airflow.model import StepRequest
from dagster_airflow.step_result import FAILURE, SKIPPED, SUCCESS, UP_FOR_RETRY
from dagster_airflow.storage.base import EVENT_LOG_NAME, OUTPUTS_RECORD_NAME, IntermediateStorage
from dagster_airflow.worker.event_printer import EventPrinter
from dagster_airflow.worker.run_state import StepRecord

_ENDS = {
    "STEP_SUCCESS": SUCCESS,
    "STEP_SKIPPED": SKIPPED,
    "STEP_FAILURE": FAILURE,
    "STEP_UP_FOR_RETRY": UP_FOR_RETRY,
}


def write_record(storage: IntermediateStorage, request: StepRequest, printer: EventPrinter) -> None:
    """What the step yielded, in order, and how this attempt ended: the steps after it read
    this where the storage's listing cannot tell (run_state.py), and the step's next try
    whether Dagster asked for it (task/retry_gate.py). Without it they cannot run right, so
    a step whose record cannot be written fails."""
    status = FAILURE  # a worker that stopped before the step ended
    for event in printer.events:
        status = _ENDS.get(event.event_type, status)
    outputs = tuple(
        (e.output_name, e.mapping_key)
        for e in printer.events
        if e.event_type == "STEP_OUTPUT" and e.output_name
    )
    key = storage.key(request.run_id, request.step_key, OUTPUTS_RECORD_NAME)
    try:
        record = StepRecord(status, outputs, request.attempt)
        storage.put_bytes(key, record.to_json().encode())
    except Exception as exc:
        if status == FAILURE:  # the step failed already, for the same cause most likely
            printer.say(f"could not write the step's record to {storage.uri(key)}: {exc}")
            return
        printer.fail(
            exc,
            f"could not write the step's record of its outputs to {storage.uri(key)}: {exc}",
        )


def write_event_log(
    storage: IntermediateStorage, request: StepRequest, printer: EventPrinter
) -> None:
    """Append this attempt's events to the step's event log (one key for every attempt).

    Read the earlier attempts, then write the whole: the storage commits a write atomically,
    so a reader sees every attempt before this one or every attempt with it. Lines of an
    earlier run of this very attempt are replaced.
    """
    key = storage.key(request.run_id, request.step_key, EVENT_LOG_NAME)
    try:
        earlier = _earlier_attempts(storage, key, request.attempt)
        body = earlier + "".join(e.to_json() + "\n" for e in printer.events)
        storage.put_bytes(key, body.encode())
    except Exception as exc:  # the step's result stands; say why its log is missing
        printer.say(f"could not write the step's event log to {storage.uri(key)}: {exc}")


def _earlier_attempts(storage: IntermediateStorage, key: str, attempt: int) -> str:
    if not storage.exists(key):
        return ""
    lines = storage.get_bytes(key).decode().splitlines(keepends=True)
    return "".join(line for line in lines if _attempt_of(line) != attempt)


def _attempt_of(line: str) -> int | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data.get("attempt") if isinstance(data, Mapping) else None
