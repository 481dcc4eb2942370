"""A job's partitions as Airflow sees them, and the partition one DAG run executes (Dagster side).

At scaffold time: the schedule, start date and `partition` param a partitions definition gives.
When a step runs: the partition of its DAG run, the one Dagster's own
`build_schedule_from_partitioned_job` would launch at the run's logical date (the last partition
whose window has ended by then), unless `conf["partition"]` names one.
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError, RunConfigError

TIME, STATIC, MULTI = "time", "static", "multi"
# At most this many keys become the `partition` param's enum (the trigger form's choices).
MAX_ENUM_KEYS = 1000


@attrs.frozen
class Partitioning:
    """What the DAG file needs of a partitions definition: plain data."""

    kind: str  # TIME, STATIC or MULTI
    cron: str | None = None  # TIME: the cron of Dagster's schedule for the partitions
    timezone: str | None = None
    # TIME: when Dagster's schedule first launches a partition (the end of the first window)
    start: datetime.datetime | None = None
    keys: tuple[str, ...] = ()  # STATIC: every key (the param's enum)
    examples: tuple[str, ...] = ()  # a few valid keys, for the param's description
    description: str = ""  # the partitions definition, as Dagster prints it


def partitioning(job) -> Partitioning | None:
    """The job's partitions for the DAG file, or None for an unpartitioned job; one sentence
    for those a DAG cannot follow."""
    from dagster import (
        DynamicPartitionsDefinition,
        MultiPartitionsDefinition,
        StaticPartitionsDefinition,
        TimeWindowPartitionsDefinition,
    )

    definition = job.partitions_def
    if definition is None:
        return None
    if isinstance(definition, DynamicPartitionsDefinition) or _has_dynamic(definition):
        raise ConfigurationError(
            f"job {job.name!r} has dynamic partitions ({definition}), whose keys live in a "
            "Dagster instance that Airflow's steps do not share; use static or time partitions "
            "for a job scheduled by Airflow."
        )
    if isinstance(definition, TimeWindowPartitionsDefinition):
        first = definition.get_first_partition_window()
        first_key = definition.get_first_partition_key()
        # The first two keys, never the newest: the DAG file must not change with the clock.
        second_key = definition.get_next_partition_key(first_key) if first_key else None
        return Partitioning(
            kind=TIME,
            cron=definition.get_cron_schedule(),
            timezone=definition.timezone,
            start=first.end if first else definition.start,
            examples=tuple(k for k in (first_key, second_key) if k),
            description=_described(definition),
        )
    keys = tuple(definition.get_partition_keys())
    kind = STATIC if isinstance(definition, StaticPartitionsDefinition) else MULTI
    if kind == MULTI and not isinstance(definition, MultiPartitionsDefinition):
        raise ConfigurationError(
            f"job {job.name!r} has partitions of a kind this scaffold does not know "
            f"({type(definition).__name__}); use time, static or multi partitions."
        )
    return Partitioning(
        kind=kind,
        keys=keys if len(keys) <= MAX_ENUM_KEYS else (),
        examples=keys[:3],
        description=_described(definition),
    )


def _described(definition) -> str:
    """The partitions definition as Dagster prints it, on one line."""
    from dagster import StaticPartitionsDefinition

    if isinstance(definition, StaticPartitionsDefinition):
        return f"Static partitions: {definition}"
    return " ".join(str(definition).split()).rstrip(".")


def _has_dynamic(definition) -> bool:
    from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition

    return isinstance(definition, MultiPartitionsDefinition) and any(
        isinstance(d.partitions_def, DynamicPartitionsDefinition)
        for d in definition.partitions_defs
    )


def _few_keys(definition) -> str:
    from dagster import TimeWindowPartitionsDefinition

    if isinstance(definition, TimeWindowPartitionsDefinition):
        first, last = definition.get_first_partition_key(), definition.get_last_partition_key()
        return f"{first!r} ... {last!r}" if first and last else "none yet"
    keys = definition.get_partition_keys()
    shown = ", ".join(repr(k) for k in keys[:3])
    return shown + (f" (and {len(keys) - 3} more)" if len(keys) > 3 else "")


def partition_for_run(job, explicit: str | None, logical_date: str | None) -> str | None:
    """The partition a DAG run executes: ``explicit`` (the conf's) when given, else the one
    Dagster's schedule would launch at the logical date; None for an unpartitioned job."""
    from dagster import TimeWindowPartitionsDefinition

    from dagster_airflow.job.dagster_compat import partition_loading_context

    definition = job.partitions_def
    if definition is None:
        if explicit is not None:
            raise RunConfigError(
                f"job {job.name!r} is not partitioned, but the DAG run's conf names partition "
                f"{explicit!r}; leave 'partition' out of the conf."
            )
        return None
    if explicit is not None:
        if not isinstance(explicit, str) or not definition.has_partition_key(explicit):
            raise RunConfigError(
                f"partition {explicit!r} is not a partition of job {job.name!r} (valid keys: "
                f"{_few_keys(definition)}); name one of them in the conf's 'partition'."
            )
        return explicit
    if isinstance(definition, TimeWindowPartitionsDefinition) and logical_date:
        at = datetime.datetime.fromisoformat(logical_date)
        with partition_loading_context(effective_dt=at):
            key = definition.get_last_partition_key()
        if key is None:
            raise RunConfigError(
                f"job {job.name!r} has no partition that has ended by the run's logical date "
                f"{logical_date!r} (its partitions: {definition}); run it at a later date or "
                "name a partition in the conf's 'partition'."
            )
        return key
    raise RunConfigError(
        f"a run of job {job.name!r} needs a partition of {definition} and names none; trigger "
        f"it with conf {{'partition': ...}} (valid keys: {_few_keys(definition)})."
    )


def run_for_partition(job, key: str | None, run_config: dict[str, Any]):
    """The partition's run config (from a partitioned config), the DAG run's own merged over
    it, and the run's partition tags (dagster/partition)."""
    from dagster_airflow.run_conf import deep_merge

    if key is None:
        return dict(run_config), {}
    base = job.get_run_config_for_partition_key(key)
    return deep_merge(base, run_config), dict(
        job.get_tags_for_partition_key(key, selected_asset_keys=None)
    )


def scaffold_run_config(job, run_config: dict[str, Any]) -> dict[str, Any]:
    """The run config the scaffold plans with: for a partitioned config, that of its first
    partition under the user's (the DAG keeps only the user's)."""
    if job.partitioned_config is None or job.partitions_def is None:
        return dict(run_config)
    keys = job.partitions_def.get_partition_keys()
    if not keys:
        return dict(run_config)
    merged, _ = run_for_partition(job, keys[0], run_config)
    return merged
