"""Dagster job + run config -> StepGraph: the plain data a DAG file is made of (Dagster side)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dagster_airflow.assets import source_assets, step_assets
from dagster_airflow.code_location import load_job, resolve
from dagster_airflow.errors import DagsterAirflowError, RunConfigError
from dagster_airflow.model import CodeLocation
from dagster_airflow.params import run_config_schema, with_placeholders
from dagster_airflow.partitions import Partitioning, partitioning, scaffold_run_config
from dagster_airflow.run_conf import deep_merge


@attrs.frozen
class Step:
    key: str
    upstream: tuple[str, ...]  # keys of the steps whose outputs it reads
    assets: tuple[str, ...] = ()  # the asset keys ("a/b") it materializes


@attrs.frozen
class StepGraph:
    """A job's execution plan as plain data: its steps in topological order."""

    code_location: CodeLocation
    job_name: str
    run_config: dict[str, Any]
    steps: tuple[Step, ...]
    description: str | None = None
    # The job's run config schema as JSON Schema: the DAG's params (see params.py).
    config_schema: dict[str, Any] = attrs.field(factory=dict)
    partitions: Partitioning | None = None  # see partitions.py
    source_assets: tuple[str, ...] = ()  # assets the job reads and another job makes


def load_run_config(paths: Sequence[str]) -> dict[str, Any]:
    """The run config YAML files merged in order."""
    import yaml

    merged: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise RunConfigError(
                f"cannot read run config file {path!r}: {exc.strerror}; check the -e path."
            ) from exc
        except yaml.YAMLError as exc:
            raise RunConfigError(f"run config file {path!r} is not valid YAML: {exc}") from exc
        if data is None:
            continue
        if not isinstance(data, dict):
            raise RunConfigError(
                f"run config file {path!r} must hold a mapping (ops:, resources: ...), "
                f"got {data!r}."
            )
        merged = deep_merge(merged, data)
    return merged


def validation_error(exc: Exception, job_name: str, where: str) -> DagsterAirflowError:
    """One sentence for Dagster's config errors, naming where the run config came from."""
    from dagster import DagsterInvalidConfigError

    if isinstance(exc, DagsterInvalidConfigError):
        problems = "; ".join(" ".join(e.message.split()) for e in exc.errors)
        return RunConfigError(
            f"the run config for job {job_name!r} is invalid: {problems}; fix it in {where}."
        )
    if isinstance(exc, DagsterAirflowError):
        return exc
    return RunConfigError(
        f"cannot plan job {job_name!r} with the run config from {where}: "
        f"{type(exc).__name__}: {exc}"
    )


def quiet_console_run_config(job, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The run config with Dagster's default console logger silenced.

    The worker prints every event itself, as a JSON line the runner renders readably; the console
    logger would print each one a second time. A job with its own loggers, or a run config that
    configures them, is left as it is.
    """
    from dagster._loggers import default_loggers

    if "loggers" in run_config or dict(job.loggers) != dict(default_loggers()):
        return dict(run_config)
    return {**run_config, "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def compile_job(
    location: CodeLocation, job_name: str, run_config: Mapping[str, Any], where: str
) -> StepGraph:
    """Load the job, validate the run config against it and list its execution steps."""
    from dagster._core.execution.api import create_execution_plan

    location = resolve(location, job_name)
    job = load_job(location, job_name)
    partitions = partitioning(job)
    schema = run_config_schema(job, run_config)
    planned = scaffold_run_config(job, with_placeholders(dict(run_config), schema))
    try:
        plan = create_execution_plan(job, run_config=planned)
    except Exception as exc:
        raise validation_error(exc, job_name, where) from exc
    dynamic = [s.key for s in plan.get_all_steps_in_topo_order() if "[?]" in s.key]
    if dynamic:
        raise DagsterAirflowError(
            f"job {job_name!r} has dynamic steps {dynamic}, whose number is known only at run "
            "time; one Airflow task per step cannot be scaffolded for them yet."
        )
    deps = plan.get_all_step_deps()
    steps = tuple(
        Step(key=s.key, upstream=tuple(sorted(deps.get(s.key, ()))), assets=step_assets(job, s))
        for s in plan.get_all_steps_in_topo_order()
    )
    return StepGraph(
        code_location=location,
        job_name=job_name,
        run_config=dict(run_config),
        steps=steps,
        description=job.description,
        config_schema=schema,
        partitions=partitions,
        source_assets=source_assets(job, plan.get_all_steps_in_topo_order()),
    )
