"""A code location's sensors (Dagster side): which become a sensor DAG, which cannot, and one
sensor's tick evaluated as Dagster's daemon evaluates it, as plain data.

A standard ``@sensor`` that targets jobs is mapped: its DAG runs every
``minimum_interval_seconds`` and its one task evaluates the sensor here (see
``dagster_airflow.task.sensor``). Everything else is said in one sentence at scaffold time:
an ``@asset_sensor`` is better served by Airflow's asset scheduling (the job's DAG scheduled on
the assets, ``--schedule-on-assets``); run status, multi-asset, freshness and automation
sensors, and sensors that target no job or an asset selection, have no Airflow counterpart.
"""

from __future__ import annotations

from typing import Any

import attrs

from dagster_airflow.errors import CodeLocationError
from dagster_airflow.job.code_location import _load, location_jobs, resolve
from dagster_airflow.model import CodeLocation


@attrs.frozen
class SensorPlan:
    """A sensor that becomes a sensor DAG, as plain data."""

    name: str
    jobs: tuple[str, ...]  # the jobs its run requests start (the first when they name none)
    minimum_interval_seconds: int
    running: bool  # Dagster's default status: RUNNING (the DAG starts unpaused)
    description: str | None = None


def location_sensors(location: CodeLocation) -> tuple[list[SensorPlan], list[str]]:
    """The location's mappable sensors, and one sentence for each sensor that is not mapped."""
    from dagster_airflow.job.dagster_compat import DefaultSensorStatus, SensorType

    jobs = set(location_jobs(location))
    plans, unmapped = [], []
    for sensor in sorted(_sensors(location), key=lambda s: s.name):
        kind = sensor.sensor_type
        targets = tuple(t.job_name for t in sensor.targets) if sensor.has_jobs else ()
        why = None
        if kind == SensorType.ASSET:
            why = (
                "is an asset sensor, which Airflow's asset scheduling serves better: scaffold "
                f"its job with --schedule-on-assets ({', '.join(map(repr, targets))})"
            )
        elif kind != SensorType.STANDARD:
            why = (
                f"is a {kind.value.lower().replace('_', ' ')} sensor, which Airflow has no "
                "counterpart for (an Airflow callback or a DAG on the job's assets may do)"
            )
        elif not targets:
            why = "targets no job (its run requests name none), so there is no DAG to trigger"
        elif missing := [t for t in targets if t not in jobs]:
            why = (
                f"targets {', '.join(map(repr, missing))}, which is not a job of the location "
                "(an asset selection): give the sensor a job= defined in the Definitions"
            )
        if why:
            unmapped.append(f"sensor {sensor.name!r} is not mapped: it {why}.")
            continue
        plans.append(
            SensorPlan(
                name=sensor.name,
                jobs=targets,
                minimum_interval_seconds=int(sensor.minimum_interval_seconds or 30),
                running=sensor.default_status == DefaultSensorStatus.RUNNING,
                description=sensor.description,
            )
        )
    return plans, unmapped


def sensors_of_job(location: CodeLocation, job_name: str) -> list[str]:
    """The names of the location's sensors that request runs of the job (a workspace is
    searched for the location that defines the job)."""
    location = resolve(location, job_name)
    return sorted(
        s.name
        for s in _sensors(location)
        if s.has_jobs and job_name in {t.job_name for t in s.targets}
    )


def _sensors(location: CodeLocation) -> list:
    return [s for repo in _load(location) for s in repo.sensor_defs]


def evaluate_sensor(location: CodeLocation, sensor_name: str, cursor: str | None) -> dict:
    """One tick of the sensor with the cursor given, as Dagster's daemon evaluates it: its run
    requests (run key, run config, tags, partition key, job), its skip reason and its cursor
    after the tick, as plain data."""
    import dagster as dg

    repositories = _load(location)
    repository = next((r for r in repositories if r.has_sensor_def(sensor_name)), None)
    if repository is None:
        names = sorted(s.name for s in _sensors(location))
        raise CodeLocationError(
            f"sensor {sensor_name!r} is not in {location.describe()}; its sensors are: "
            f"{', '.join(names) or 'none'}; scaffold the project again."
        )
    sensor = repository.get_sensor_def(sensor_name)
    with _instance() as instance:
        context = dg.build_sensor_context(
            cursor=cursor, repository_def=repository, instance=instance, sensor_name=sensor_name
        )
        data = sensor.evaluate_tick(context)
    return {
        "run_requests": [_request(r) for r in data.run_requests or []],
        "skip_reason": data.skip_message,
        "cursor": data.cursor,
    }


def _request(request) -> dict[str, Any]:
    return {
        "run_key": request.run_key,
        "run_config": dict(request.run_config or {}),
        "tags": dict(request.tags or {}),
        "partition_key": request.partition_key,
        "job_name": request.job_name,
    }


def _instance():
    """The team's instance where DAGSTER_HOME names one (a sensor may read it), else an
    ephemeral one, as a step's worker does."""
    import os

    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()
