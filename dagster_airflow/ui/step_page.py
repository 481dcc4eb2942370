"""What the step view shows of one try of a task: read from the storage, never unpickled.

Airflow side, and free of Airflow too: it is handed the storage (already holding the DAG's
credentials) and the task's coordinates, and reads the step's event log (``events.jsonl``, which
the worker writes whether the step succeeded or not). Each output's type, size and preview come
from that log, where the worker recorded them as it stored the output; the output object itself
is never read, so nothing here can run code a pickle carries.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from dagster_airflow.errors import DagsterAirflowError, OutputNotFoundError
from dagster_airflow.names import task_id_for
from dagster_airflow.step_result import StepError, StepEvent
from dagster_airflow.storage.base import EVENT_LOG_NAME, IntermediateStorage

_FAILURES = ("STEP_FAILURE", "STEP_UP_FOR_RETRY")


@attrs.frozen
class StoredOutput:
    """An output the step stored in this try, as its event log describes it."""

    name: str  # the output's name; "name[key]" for one mapping key of a dynamic output
    uri: str | None
    size: int | None  # in bytes
    type_name: str | None
    preview: str | None  # a short repr the worker wrote; None when it wrote none
    metadata: dict[str, Any]  # the op's own metadata of the output

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uri": self.uri,
            "size": self.size,
            "type": self.type_name,
            "preview": self.preview,
            "metadata": self.metadata,
        }


@attrs.frozen
class StepPage:
    """One try of a DagsterOperator task, for the step view (HTML) and its JSON twin."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    tries: int  # the task instance's latest try
    state: str | None  # Airflow's state of this try
    dagster_run_id: str
    storage_name: str
    run_uri: str | None = None  # the run's folder in the storage
    step_key: str | None = None  # None until the step wrote something
    event_log_uri: str | None = None
    events: tuple[StepEvent, ...] = ()
    outputs: tuple[StoredOutput, ...] = ()
    dagster_run_url: str | None = None  # where the graphql runner ran the step
    problem: str | None = None  # why the storage could not be read, in one sentence

    @property
    def error(self) -> StepError | None:
        """The error of this try's last failure (or retry)."""
        for event in reversed(self.events):
            if event.event_type in _FAILURES and event.error is not None:
                return event.error
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
            "tries": self.tries,
            "state": self.state,
            "dagster_run_id": self.dagster_run_id,
            "storage": self.storage_name,
            "run_uri": self.run_uri,
            "step_key": self.step_key,
            "event_log_uri": self.event_log_uri,
            "events": [_event_dict(e) for e in self.events],
            "outputs": [o.to_dict() for o in self.outputs],
            "error": self.error.to_dict() if self.error else None,
            "dagster_run_url": self.dagster_run_url,
            "problem": self.problem,
        }


def _event_dict(event: StepEvent) -> dict[str, Any]:
    data = json.loads(event.to_json())
    return {"event_type": event.event_type, **{k: v for k, v in data.items() if k in _FIELDS}}


_FIELDS = {f.name for f in attrs.fields(StepEvent)} - {"event_type"}


def _split_mapping(folder: str) -> tuple[str, str | None]:
    """``op[key]`` -> (``op``, ``key``); a step key without a mapping key is itself."""
    if folder.endswith("]") and "[" in folder:
        base, _, key = folder[:-1].partition("[")
        return base, key
    return folder, None


def find_step_key(
    storage: IntermediateStorage, dagster_run_id: str, task_id: str, mapping_key: str | None
) -> str | None:
    """The step a task ran, among the step folders of the run in the storage (a task id is its
    step key made safe for Airflow, so the step key cannot be derived from it)."""
    steps = set()
    for key in storage.list(dagster_run_id):
        steps.add(key[len(dagster_run_id) + 1 :].rpartition("/")[0])
    for step in sorted(steps):
        base, key = _split_mapping(step)
        if key is None and mapping_key is None and task_id_for(step) == task_id:
            return step
        if key is not None and key == mapping_key and task_id_for(f"{base}[?]") == task_id:
            return step
    return None


def _events_of_try(text: str, try_number: int) -> tuple[StepEvent, ...]:
    events = (StepEvent.from_line(line) for line in text.splitlines())
    return tuple(e for e in events if e is not None and e.attempt in (try_number, None))


def _outputs(events: tuple[StepEvent, ...]) -> tuple[StoredOutput, ...]:
    own_metadata = {
        (e.output_name, e.mapping_key): e.metadata or {}
        for e in events
        if e.event_type == "STEP_OUTPUT"
    }
    outputs = []
    for event in events:
        if event.event_type != "HANDLED_OUTPUT" or not event.output_name:
            continue
        recorded = event.metadata or {}
        name = event.output_name
        outputs.append(
            StoredOutput(
                name=f"{name}[{event.mapping_key}]" if event.mapping_key else name,
                uri=event.uri,
                size=recorded.get("size"),
                type_name=recorded.get("type"),
                preview=recorded.get("preview"),
                metadata=own_metadata.get((name, event.mapping_key), {}),
            )
        )
    return tuple(outputs)


def read_step_page(
    page: StepPage, storage: IntermediateStorage, mapping_key: str | None = None
) -> StepPage:
    """The page with what the storage holds of its try: events, outputs, or the problem."""
    try:
        page = attrs.evolve(page, run_uri=storage.uri(page.dagster_run_id))
        step_key = find_step_key(storage, page.dagster_run_id, page.task_id, mapping_key)
        if step_key is None:
            return page
        key = storage.key(page.dagster_run_id, step_key, EVENT_LOG_NAME)
        try:
            text = storage.get_bytes(key).decode("utf-8", "replace")
        except OutputNotFoundError:
            return attrs.evolve(page, step_key=step_key)
    except DagsterAirflowError as exc:
        return attrs.evolve(page, problem=str(exc))
    events = _events_of_try(text, page.try_number)
    return attrs.evolve(
        page,
        step_key=step_key,
        event_log_uri=storage.uri(key),
        events=events,
        outputs=_outputs(events),
    )
