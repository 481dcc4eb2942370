"""A job's Dagster schedule as its DAG's schedule (Dagster side).

At scaffold time: the schedule's crons, execution timezone and default status, and, for a schedule
that computes nothing (``ScheduleDefinition(run_config=..., tags=...)``), its run config and tags
from Dagster's own evaluation of a tick. When a DAG run starts: a schedule that computes its run
request (``@schedule``, ``run_config_fn``, ``tags_fn``, ``should_execute``) is evaluated at the
run's logical date, as Dagster's daemon evaluates that tick (``ScheduleTick``).
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError, RunConfigError


@attrs.frozen
class Schedule:
    """What the DAG file needs of a Dagster schedule: plain data."""

    name: str
    crons: tuple[str, ...]
    timezone: str  # the execution_timezone, UTC when the schedule names none
    running: bool  # default_status RUNNING: the DAG is unpaused on creation
    # A schedule that computes its run request: evaluated on the Dagster side at each run.
    evaluated: bool = False
    # A static schedule's run config and tags, from Dagster's evaluation of one tick.
    run_config: dict[str, Any] = attrs.field(factory=dict)
    tags: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ScheduleTick:
    """One tick of a schedule, as Dagster evaluated it: the run it asks for, or why it skips."""

    skip_reason: str | None = None
    run_config: dict[str, Any] = attrs.field(factory=dict)
    tags: dict[str, str] = attrs.field(factory=dict)
    partition_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleTick:
        return cls(**data)


# What ScheduleDefinition fills in when a schedule gives only run_config= and tags=.
_STATIC_PARTS = (
    ("_execution_fn", "ScheduleDefinition.__init__.<locals>._execution_fn"),
    ("_run_config_fn", "ScheduleDefinition.__init__.<locals>._default_run_config_fn"),
    ("_tags_fn", "ScheduleDefinition.__init__.<locals>.<lambda>"),
    ("_should_execute", "ScheduleDefinition.__init__.<locals>.<lambda>"),
)


def _is_static(definition) -> bool:
    return all(
        getattr(getattr(definition, attr, None), "__qualname__", "") == qualname
        for attr, qualname in _STATIC_PARTS
    )


def schedules_of(repository, job_name: str) -> list:
    """The schedules of the repository that target the job."""
    found = []
    for definition in repository.schedule_defs:
        try:
            target = definition.job_name
        except Exception:  # a schedule of an asset selection that resolves to no one job
            continue
        if target == job_name:
            found.append(definition)
    return found


def pick_schedule(definitions: list, job_name: str, wanted: str | None):
    """The one schedule the DAG follows: ``wanted`` (--schedule), or the job's only one."""
    names = sorted(d.name for d in definitions)
    if wanted is not None:
        if wanted == "none":
            return None
        chosen = [d for d in definitions if d.name == wanted]
        if not chosen:
            raise ConfigurationError(
                f"--schedule {wanted!r} is not a schedule of job {job_name!r} (its schedules: "
                f"{', '.join(names) or 'none'}); name one of them, or --schedule none."
            )
        return chosen[0]
    if len(definitions) > 1:
        raise ConfigurationError(
            f"job {job_name!r} has {len(definitions)} schedules ({', '.join(names)}) and an "
            "Airflow DAG has one schedule; scaffold one DAG per schedule with --schedule NAME "
            "and --dag-id (e.g. --dag-id JOB__SCHEDULE)."
        )
    return definitions[0] if definitions else None


def schedule_spec(definition, job_name: str) -> Schedule:
    """The schedule as plain data; a static one evaluated once here, as Dagster would."""
    from dagster import DefaultScheduleStatus

    crons = definition.cron_schedule
    crons = (crons,) if isinstance(crons, str) else tuple(crons)
    spec = Schedule(
        name=definition.name,
        crons=crons,
        timezone=definition.execution_timezone or "UTC",
        running=definition.default_status == DefaultScheduleStatus.RUNNING,
        evaluated=not _is_static(definition),
    )
    if spec.evaluated:
        return spec
    tick = evaluate_tick(definition, job_name, datetime.datetime.now(datetime.UTC))
    return attrs.evolve(spec, run_config=tick.run_config, tags=tick.tags)


def evaluate_tick(definition, job_name: str, at: datetime.datetime) -> ScheduleTick:
    """Dagster's evaluation of the schedule's tick at ``at``, as its daemon does it."""
    from dagster import build_schedule_context

    with build_schedule_context(scheduled_execution_time=at) as context:
        result = definition.evaluate_tick(context)
    requests = list(result.run_requests or [])
    if not requests:
        reason = result.skip_message or "the schedule returned no RunRequest"
        return ScheduleTick(skip_reason=f"schedule {definition.name!r} skipped: {reason}")
    if len(requests) > 1:
        keys = ", ".join(repr(r.run_key) for r in requests)
        raise RunConfigError(
            f"schedule {definition.name!r} asked for {len(requests)} runs at {at.isoformat()} "
            f"(run keys {keys}), and a DAG run is one Dagster run; return one RunRequest per "
            "tick, or give each run a job and a schedule of its own."
        )
    request = requests[0]
    if request.job_name not in (None, job_name):
        raise RunConfigError(
            f"schedule {definition.name!r} asked for a run of job {request.job_name!r}, not of "
            f"job {job_name!r} whose DAG it schedules; target this job."
        )
    tags = {k: v for k, v in request.tags.items() if k != "dagster/partition"}
    return ScheduleTick(
        run_config=dict(request.run_config or {}),
        tags=dict(tags),
        partition_key=request.partition_key,
    )


def planning_run_config(definition, job_name: str, ticks: int = 24) -> dict[str, Any]:
    """The run config of the first of the schedule's next ``ticks`` ticks that asks for a run:
    what the scaffold plans the job with (the DAG keeps the user's own; each run gets its
    tick's). Empty when they all skip."""
    import time

    from dagster_airflow.job.dagster_compat import schedule_execution_time_iterator

    times = schedule_execution_time_iterator(
        time.time(), definition.cron_schedule, definition.execution_timezone or "UTC"
    )
    for _, at in zip(range(ticks), times, strict=False):
        try:
            tick = evaluate_tick(definition, job_name, at)
        except Exception as exc:
            raise ConfigurationError(
                f"schedule {definition.name!r} of job {job_name!r} failed to evaluate its tick "
                f"at {at.isoformat()} ({type(exc).__name__}: {exc}); fix the schedule."
            ) from exc
        if tick.skip_reason is None:
            return tick.run_config
    return {}


def tick_for_run(repository, job_name: str, schedule_name: str, at: str) -> ScheduleTick:
    """The tick of the named schedule at a DAG run's logical date (ISO 8601)."""
    definition = next(
        (d for d in schedules_of(repository, job_name) if d.name == schedule_name), None
    )
    if definition is None:
        raise RunConfigError(
            f"job {job_name!r} has no schedule {schedule_name!r} any more; scaffold its DAG "
            "again (`dagster-airflow check` shows what changed)."
        )
    return evaluate_tick(definition, job_name, datetime.datetime.fromisoformat(at))
