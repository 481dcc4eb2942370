"""The wire between the Airflow side and the Dagster side: plain attrs classes that travel as JSON.

Nothing here imports Dagster or Airflow. The scaffold writes these shapes into the DAG file as
literals, the operator builds a `StepRequest` from them, and a runner hands its JSON to the
worker. What the worker answers (`StepEvent` lines, folded into a `StepResult`) is in
step_result.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.keys import check_run_id

# Runners and tests outside this package import what a step answers from here (step_result.py
# holds it now); the package itself imports it from there.
from dagster_airflow.step_result import (  # noqa: F401
    EXIT_FAILURE,
    EXIT_NO_RETRY,
    EXIT_SUCCESS,
    EXIT_UP_FOR_RETRY,
    FAILURE,
    LOST,
    NEVER_STARTED,
    SKIPPED,
    STOPPED,
    SUCCESS,
    TIMEOUT,
    UP_FOR_RETRY,
    StepError,
    StepEvent,
    StepResult,
)

# uuid5 namespace of every Dagster run id this project derives from an Airflow run.
RUN_ID_NAMESPACE = uuid.UUID("5c1f3c6e-2b0b-4f4e-9a57-6d0a1f6e7a10")

# An environment variable a runner sets to hand the worker its request.
REQUEST_ENV_VAR = "DAGSTER_AIRFLOW_STEP_REQUEST"

# The one tag vocabulary of every runner: what a container's labels, an ECS task's tags and a
# Dagster run's tags are called. A runner writes PREFIX + separator + name ("dagster-airflow/dag_id"
# on ECS and Dagster, "dagster-airflow.dag_id" as a container label).
TAG_PREFIX = "dagster-airflow"
DAGSTER_RUN_ID, STEP_KEY = "dagster_run_id", "step_key"
TRY_TAGS = ("dag_id", "task_id", "airflow_run_id", "map_index", "try_number")

# The Dagster run tag that carries the Airflow-derived run id, when a step runs as a Dagster run
# of its own (the graphql runner): the IO manager keys intermediates by it. The same name on every
# runner; LEGACY_RUN_ID_TAG is what runners before the one vocabulary wrote, still read.
RUN_ID_TAG = f"{TAG_PREFIX}/{DAGSTER_RUN_ID}"
LEGACY_RUN_ID_TAG = f"{TAG_PREFIX}/run_id"


# Set on every Airflow component of a deployment (workers, api-server) to keep its run ids apart
# from another deployment's that shares the storage with the same DAG ids (docs/storage.md).
NAMESPACE_ENV_VAR = "DAGSTER_AIRFLOW_NAMESPACE"


def dagster_run_id(dag_id: str, airflow_run_id: str, namespace: str | None = None) -> str:
    """The Dagster run id shared by every task of one Airflow DAG run.

    Derived from the dag id and the Airflow run id (never the logical date, which is None for
    triggered runs), so a retried task finds the outputs its upstream tasks wrote; and from the
    deployment's namespace (default: ``$DAGSTER_AIRFLOW_NAMESPACE``), so that staging's
    ``scheduled__2026-12-01T00:00:00+00:00`` of a DAG is not production's. Without a namespace
    the id is what it always was.
    """
    if namespace is None:
        namespace = os.environ.get(NAMESPACE_ENV_VAR, "")
    name = f"{dag_id}\n{airflow_run_id}"
    return str(uuid.uuid5(RUN_ID_NAMESPACE, f"{namespace}\n{name}" if namespace else name))


# How a DAG run ended, as its end task tells the Dagster run in the team's instance.
RUN_SUCCESS, RUN_FAILURE, RUN_CANCELED = "success", "failure", "canceled"
RUN_ENDS = (RUN_SUCCESS, RUN_FAILURE, RUN_CANCELED)


def _check_run_end(value: Any) -> None:
    if value is not None and value not in RUN_ENDS:
        raise ConfigurationError(
            f"the step request's run_end {value!r} is not one of {', '.join(RUN_ENDS)}."
        )


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a mapping, got {value!r}.")
    return dict(value)


@attrs.frozen
class CodeLocation:
    """Where a Dagster job is defined, as the Dagster CLI's -f / -m / -w with -a and -d."""

    python_file: str | None = None
    module_name: str | None = None
    workspace: str | None = None
    attribute: str | None = None
    working_directory: str | None = None
    # With a workspace: which of its code locations holds the job (None: search them all).
    location_name: str | None = None

    def __attrs_post_init__(self) -> None:
        given = [n for n in ("python_file", "module_name", "workspace") if getattr(self, n)]
        if len(given) != 1:
            raise ConfigurationError(
                "a code location needs exactly one of python_file (-f), module_name (-m) or "
                f"workspace (-w), got {given or 'none'}; name the one that defines the job."
            )

    @property
    def name(self) -> str:
        """A short name: the workspace's location name, else the file's stem or the module."""
        if self.location_name:
            return self.location_name
        if self.python_file:
            stem = self.python_file.rsplit("/", 1)[-1]
            return stem[:-3] if stem.endswith(".py") else stem
        if self.module_name:
            return self.module_name.rsplit(".", 1)[-1]
        return "workspace"

    def describe(self) -> str:
        target = self.python_file or self.module_name or self.workspace
        kind = "file" if self.python_file else "module" if self.module_name else "workspace"
        suffix = f" (attribute {self.attribute!r})" if self.attribute else ""
        return f"{kind} {target!r}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeLocation:
        data = _json_object(data, "code_location")
        unknown = set(data) - {f.name for f in attrs.fields(cls)}
        if unknown:
            raise ConfigurationError(
                f"code_location has unknown keys {sorted(unknown)}; the keys are python_file, "
                "module_name, workspace, attribute, working_directory and location_name."
            )
        return cls(**data)


@attrs.frozen
class BackendSpec:
    """A backend chosen by name, with that backend's options, as in a DAG's default_args.

    Written in the DAG file as ``{"name": "docker", "image": "my-image"}``, or just ``"docker"``.
    """

    name: str
    options: dict[str, Any] = attrs.field(factory=dict)

    KIND = "backend"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}

    @classmethod
    def from_value(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(name=value)
        data = _json_object(value, cls.KIND)
        name = data.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"{cls.KIND} {value!r} has no 'name'; write it as "
                f'{{"name": "<{cls.KIND} name>", ...options}}.'
            )
        return cls(name=name, options=data)


@attrs.frozen
class RunnerSpec(BackendSpec):
    KIND = "runner"


@attrs.frozen
class StorageSpec(BackendSpec):
    KIND = "storage"


@attrs.frozen
class TaskRef:
    """The Airflow try a step runs for: the identity every runner labels its work with.

    The identity includes the try number, so a retry never reattaches to the run of the try
    before it: Airflow retries because it judged that try failed (the step failed, timed out, or
    its worker was lost), and the run it left is the failed one, whose outcome must not be
    reported again as the new try's. Its request differs too (Dagster's retry_number, a run
    config rendered anew). Within one try (a worker restarted, the same try run again) the
    identity is the same, so a runner follows the run it finds instead of starting a second.
    Airflow's ECS operator leaves the try out, so that a retry after a lost worker finds the
    orphan; here that orphan runs to its end beside the retry, which is safe for the storage
    (every output is committed atomically) and stopped by the kill of its own try where Airflow
    still sends one. docs/plugins.md says the same.
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1

    def fingerprint(self) -> str:
        """A hex digest of the try: the same for every process of this try, different across
        dags, tasks, runs, map indexes and tries. Names and marks are cut from it."""
        parts = [self.dag_id, self.task_id, self.run_id, str(self.map_index), str(self.try_number)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def tags(self, separator: str = "/") -> dict[str, str]:
        """The try's tags in the one vocabulary (TRY_TAGS), as ``dagster-airflow/dag_id``."""
        values = (self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number)
        pairs = zip(TRY_TAGS, values, strict=True)
        return {f"{TAG_PREFIX}{separator}{name}": str(value) for name, value in pairs}

    def tags_of_every_try(self, separator: str = "/") -> dict[str, str]:
        """The tags that every try of this task instance has (``tags`` but the try number)."""
        return {k: v for k, v in self.tags(separator).items() if k != try_tag(separator)}


def try_tag(separator: str = "/") -> str:
    """The tag that holds the Airflow try number."""
    return f"{TAG_PREFIX}{separator}{TRY_TAGS[-1]}"


@attrs.frozen
class StepRequest:
    """Everything the worker needs to execute one step, and nothing secret."""

    code_location: CodeLocation
    job_name: str
    step_key: str
    # A UUID, checked: it is the first part of every storage key the step reads or writes.
    run_id: str = attrs.field(
        validator=lambda _, __, value: check_run_id(value, "the step request")
    )
    run_config: dict[str, Any] = attrs.field(factory=dict)
    storage: StorageSpec = attrs.field(factory=lambda: StorageSpec("filesystem"))
    attempt: int = 1  # the Airflow try number: identifies this try (an ECS task, a tag)
    task: TaskRef | None = None
    # Dagster's context.retry_number for this try: the Airflow tries of this task before it,
    # counted from its last clear. None: attempt - 1.
    retry_number: int | None = None

    @property
    def previous_attempts(self) -> int:
        """How many attempts of this step Dagster should believe came before this one."""
        if self.retry_number is not None:
            return max(self.retry_number, 0)
        return max(self.attempt - 1, 0)

    partition_key: str | None = None  # the DAG run's conf["partition"], when it names one
    logical_date: str | None = None  # ISO 8601; None for a run triggered without one
    # The team's Dagster instance (its home, as the step sees it, with the dagster.yaml): the
    # DAG run is one Dagster run there. None: an ephemeral instance for the step alone.
    dagster_home: str | None = None
    # Tags of the Dagster run besides the job's: the DAG's plan fingerprint (with a team
    # instance), a schedule's, or its tick's for this run.
    run_tags: dict[str, str] = attrs.field(factory=dict)
    # Set on the DAG run's last request (its end task): the run's end in Dagster, one of
    # RUN_ENDS; the worker then runs no step, it ends the run in the instance.
    run_end: str | None = attrs.field(default=None, validator=lambda _, __, v: _check_run_end(v))
    # Set: the request is not a step's but a tick of this Dagster schedule of the job, to be
    # evaluated at logical_date (dagster_airflow.worker.schedule_tick).
    schedule_name: str | None = None

    def tags(self, separator: str = "/") -> dict[str, str]:
        """What a runner labels this step's run with: the Dagster run id and step, and the
        Airflow try (TaskRef.tags) when there is one."""
        tags = {
            f"{TAG_PREFIX}{separator}{DAGSTER_RUN_ID}": self.run_id,
            f"{TAG_PREFIX}{separator}{STEP_KEY}": self.step_key,
        }
        return tags | (self.task.tags(separator) if self.task else {})

    def fingerprint(self) -> str:
        """The identity's digest: the Airflow try's (TaskRef.fingerprint); outside Airflow, the
        Dagster run, step and attempt."""
        if self.task is not None:
            return self.task.fingerprint()
        parts = [self.run_id, self.step_key, str(self.attempt)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def to_json(self) -> str:
        data = {
            "code_location": self.code_location.to_dict(),
            "job_name": self.job_name,
            "step_key": self.step_key,
            "run_id": self.run_id,
            "run_config": self.run_config,
            "storage": self.storage.to_dict(),
            "attempt": self.attempt,
            "task": attrs.asdict(self.task) if self.task else None,
            "retry_number": self.retry_number,
            "partition_key": self.partition_key,
            "logical_date": self.logical_date,
        }
        # Only where set: a request without them reads as it always did.
        extra = {
            "dagster_home": self.dagster_home,
            "run_tags": self.run_tags,
            "run_end": self.run_end,
            "schedule_name": self.schedule_name,
        }
        data |= {k: v for k, v in extra.items() if v}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StepRequest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"a step request must be JSON: {exc} in {text[:80]!r}"
            ) from exc
        data = _json_object(data, "step request")
        try:
            return cls(
                code_location=CodeLocation.from_dict(data["code_location"]),
                job_name=data["job_name"],
                step_key=data["step_key"],
                run_id=data["run_id"],
                run_config=_json_object(data.get("run_config") or {}, "run_config"),
                storage=StorageSpec.from_value(data.get("storage") or "filesystem"),
                attempt=int(data.get("attempt", 1)),
                task=TaskRef(**data["task"]) if data.get("task") else None,
                retry_number=data.get("retry_number"),
                partition_key=data.get("partition_key"),
                logical_date=data.get("logical_date"),
                dagster_home=data.get("dagster_home"),
                run_tags=_json_object(data.get("run_tags") or {}, "run_tags"),
                run_end=data.get("run_end"),
                schedule_name=data.get("schedule_name"),
            )
        except KeyError as exc:
            raise ConfigurationError(f"the step request has no {exc.args[0]!r}.") from exc
