"""A DAG run's results, found by its Airflow run id: what `dagster-airflow results` shows.

The DAG's scaffolded file says where its outputs went (``DEFAULT_ARGS``: storage, runner, code
location) and which steps it has (its ``DagsterOperator`` calls). It is read with ``ast``, never
imported: reading it needs neither Airflow nor the job's code. The Airflow run id gives the
Dagster run id (``model.dagster_run_id``), and that is the run's folder in the storage.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError, OutputNotFoundError
from dagster_airflow.files import human_size
from dagster_airflow.model import RunnerSpec, StorageSpec, dagster_run_id
from dagster_airflow.scaffold.dag_file import parse_dag_text
from dagster_airflow.step_result import EVENT_MARKER, StepEvent
from dagster_airflow.storage.base import (
    EVENT_LOG_NAME,
    OUTPUTS_RECORD_NAME,
    ConnectionGetter,
    IntermediateStorage,
)

EVENTS = "events"  # what --show STEP.events names: the step's event log
_STATUS = {"STEP_SUCCESS": "success", "STEP_FAILURE": "failed", "STEP_SKIPPED": "skipped"}


@attrs.frozen
class DagFile:
    """What a scaffolded DAG file declares, read without importing it."""

    path: Path
    dag_id: str
    default_args: dict[str, Any]
    step_keys: tuple[str, ...]

    @property
    def storage_spec(self) -> StorageSpec:
        from dagster_airflow.plugins.manager import get_plugins

        value = self.default_args.get("storage")
        if value is None:
            runner = RunnerSpec.from_value(self.default_args.get("runner") or "subprocess")
            value = get_plugins().runner(runner.name).cls.default_storage
        return StorageSpec.from_value(value)

    def storage(self) -> IntermediateStorage:
        from dagster_airflow.plugins.manager import get_plugins

        spec = self.storage_spec
        templated = [k for k, v in spec.options.items() if isinstance(v, str) and "{{" in v]
        if templated:
            raise ConfigurationError(
                f"the storage of DAG {self.dag_id!r} in {str(self.path)!r} has templated "
                f"options {templated}, known only when a task runs; write their values in "
                "DEFAULT_ARGS, or pass --dag-file with a copy that has them."
            )
        return get_plugins().storage(spec.name).create(spec.options)


def read_dag_file(path: Path) -> DagFile:
    """The declarations of a scaffolded DAG file; one sentence when it is not one."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the DAG file {str(path)!r}: {exc.strerror}; check the --dag-file path."
        ) from exc
    found = parse_dag_text(text, f"the DAG file {str(path)!r}")
    default_args, dag_id = found.default_args, found.dag_id
    if default_args is None or dag_id is None or "code_location" not in default_args:
        raise ConfigurationError(
            f"{str(path)!r} is not a DAG file dagster-airflow scaffolded (it has no DAG(dag_id="
            "...) with a DEFAULT_ARGS naming a code location); pass --dag-file with one."
        )
    return DagFile(path, dag_id, default_args, found.step_keys)


def find_dag_file(dag_id: str, folder: Path) -> DagFile:
    """The scaffolded file of a DAG in Airflow's dags folder (searched as Airflow does, files
    in subfolders too)."""
    files = sorted(folder.rglob("*.py")) if folder.is_dir() else []
    for path in files:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if "DagsterOperator" not in text or dag_id not in text:
            continue
        try:
            dag = read_dag_file(path)
        except ConfigurationError:
            continue
        if dag.dag_id == dag_id:
            return dag
    raise ConfigurationError(
        f"no DAG {dag_id!r} in the dags folder {str(folder)!r}: no file scaffolded by "
        f"dagster-airflow there has dag_id={dag_id!r}; check the DAG id, or pass --dag-file "
        "with its file (--dags-folder, AIRFLOW__CORE__DAGS_FOLDER or AIRFLOW_HOME for another "
        "folder)."
    )


@attrs.frozen
class StoredObject:
    name: str
    uri: str
    size: int
    modified: float

    @property
    def written(self) -> str:
        """When it was written, in UTC, to the second."""
        moment = datetime.datetime.fromtimestamp(self.modified, datetime.UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%SZ")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri, "size": self.size, "written": self.written}


@attrs.frozen
class StepResults:
    step_key: str
    status: str  # success, failed, skipped, incomplete, not run
    outputs: tuple[StoredObject, ...]
    event_log: StoredObject | None
    events: tuple[StepEvent, ...]

    def output(self, name: str | None) -> StoredObject:
        names = [o.name for o in self.outputs]
        if name is None and len(names) == 1:
            name = names[0]
        elif name is None:
            name = "result"
        for stored in self.outputs:
            if stored.name == name:
                return stored
        raise OutputNotFoundError(
            f"step {self.step_key!r} wrote no output {name!r} in this run; its outputs are: "
            f"{', '.join(repr(n) for n in names) or 'none'} (write --show "
            f"{self.step_key}.OUTPUT)."
        )

    def to_dict(self) -> dict[str, Any]:
        log = self.event_log
        return {
            "step_key": self.step_key,
            "status": self.status,
            "outputs": [o.to_dict() for o in self.outputs],
            "event_log": {**log.to_dict(), "events": [event_dict(e) for e in self.events]}
            if log
            else None,
        }


def event_dict(event: StepEvent) -> dict[str, Any]:
    import json

    data = json.loads(event.to_json())
    return {"event_type": data.pop(EVENT_MARKER), **data}


@attrs.frozen
class RunResults:
    dag: DagFile
    run_id: str
    dagster_run_id: str
    root_uri: str
    steps: tuple[StepResults, ...]

    def step(self, key: str) -> StepResults:
        for step in self.steps:
            if step.step_key == key:
                return step
        raise ConfigurationError(
            f"DAG {self.dag.dag_id!r} has no step {key!r}; its steps are: "
            f"{', '.join(s.step_key for s in self.steps)}."
        )

    def find(self, target: str) -> tuple[StepResults, str | None]:
        """``STEP`` or ``STEP.OUTPUT`` (a step key may itself have dots: graph.op)."""
        keys = {s.step_key for s in self.steps}
        if target in keys:
            return self.step(target), None
        step, dot, output = target.rpartition(".")
        return self.step(step if dot else target), output or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag.dag_id,
            "run_id": self.run_id,
            "dagster_run_id": self.dagster_run_id,
            "dag_file": str(self.dag.path),
            "storage": {"name": self.dag.storage_spec.name, "uri": self.root_uri},
            "steps": [s.to_dict() for s in self.steps],
        }


def _stored(storage: IntermediateStorage, key: str) -> StoredObject:
    stat = storage.stat(key)
    return StoredObject(key.rsplit("/", 1)[-1], storage.uri(key), stat.size, stat.modified)


def _events(storage: IntermediateStorage, key: str) -> tuple[StepEvent, ...]:
    text = storage.get_bytes(key).decode("utf-8", "replace")
    return tuple(e for e in map(StepEvent.from_line, text.splitlines()) if e is not None)


def run_results(dag: DagFile, run_id: str, storage: IntermediateStorage) -> RunResults:
    """Each step of the DAG run with what it wrote; one sentence when the run wrote nothing."""
    dagster_id = dagster_run_id(dag.dag_id, run_id)
    keys = list(storage.list(dagster_id))
    root = storage.uri(dagster_id)
    if not keys:
        raise OutputNotFoundError(
            f"no results of DAG {dag.dag_id!r} run {run_id!r} under {root!r}; check the run "
            f"id (`airflow dags list-runs {dag.dag_id}` lists them; they look like "
            "manual__2026-11-25T10:00:00+00:00)."
        )
    by_step: dict[str, list[str]] = {}
    for key in keys:
        step_key, _, name = key[len(dagster_id) + 1 :].rpartition("/")
        by_step.setdefault(step_key, []).append(name)
    # The DAG's steps in its order, then any the storage has that the file no longer names.
    order = list(dag.step_keys) + sorted(set(by_step) - set(dag.step_keys))
    steps = []
    for step_key in order:
        names = by_step.get(step_key, [])
        outputs = tuple(
            _stored(storage, storage.key(dagster_id, step_key, n))
            for n in names
            if n not in (EVENT_LOG_NAME, OUTPUTS_RECORD_NAME)  # the worker's own records
        )
        log_key = storage.key(dagster_id, step_key, EVENT_LOG_NAME)
        event_log = _stored(storage, log_key) if EVENT_LOG_NAME in names else None
        events = _events(storage, log_key) if event_log else ()
        status = next(
            (_STATUS[e.event_type] for e in reversed(events) if e.event_type in _STATUS),
            "incomplete" if names else "not run",
        )
        steps.append(StepResults(step_key, status, outputs, event_log, events))
    return RunResults(dag, run_id, dagster_id, root, tuple(steps))


@contextmanager
def credentials(storage: IntermediateStorage, get_connection: ConnectionGetter) -> Iterator[None]:
    """The storage's credentials from the DAG's Airflow connection, in this process's
    environment while the block runs (where a step's worker would have them)."""
    env = storage.credentials_env(get_connection)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_value(storage: IntermediateStorage, stored: StoredObject, key: str, dag: DagFile) -> Any:
    """Unpickle one output here, with the job's working directory importable."""
    import pickle

    location = dag.default_args.get("code_location") or {}
    directory = location.get("working_directory")
    if isinstance(directory, str) and Path(directory).is_dir() and directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        with storage.open_read(key) as stream:
            return pickle.load(stream)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot unpickle {stored.uri!r} here ({type(exc).__name__}: {exc}); run "
            "`dagster-airflow results` with a Python where the job's code is importable."
        ) from exc


def table(results: RunResults) -> str:
    """The run's steps, outputs and event logs, as columns."""
    rows = [("STEP", "STATUS", "OUTPUT", "SIZE", "WRITTEN", "URI")]
    for step in results.steps:
        first = True
        stored = [*step.outputs, *([step.event_log] if step.event_log else [])]
        for obj in stored:
            name = obj.name if obj is not step.event_log else f"{obj.name} ({len(step.events)})"
            rows.append(
                (
                    step.step_key if first else "",
                    step.status if first else "",
                    name,
                    human_size(obj.size),
                    obj.written,
                    obj.uri,
                )
            )
            first = False
        if not stored:
            rows.append((step.step_key, step.status, "", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    ]
    header = (
        f"DAG {results.dag.dag_id!r}, Airflow run {results.run_id!r}: Dagster run "
        f"{results.dagster_run_id} in {results.root_uri}"
    )
    return "\n".join([header, "", *(line.rstrip() for line in lines)]) + "\n"


def events_text(step: StepResults) -> str:
    from dagster_airflow.step_log import describe

    lines = []
    for event in step.events:
        moment = datetime.datetime.fromtimestamp(event.timestamp, datetime.UTC)
        lines.append(f"{moment:%H:%M:%S}  {event.event_type:<16}  {describe(event)}")
    return "\n".join(lines) + "\n"


def jsonable(value: Any) -> Any:
    """The value as JSON, where it is plain data; else its repr."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
