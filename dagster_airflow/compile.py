"""Dagster job + run config -> StepGraph: the plain data a DAG file is made of (Dagster side)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dagster_airflow.code_location import load_job, resolve
from dagster_airflow.errors import DagsterAirflowError, RunConfigError, yaml_problem
from dagster_airflow.model import CodeLocation


@attrs.frozen
class StepRetryPolicy:
    """A step's effective Dagster RetryPolicy as plain data (Dagster resolves it per node: the
    invocation's `.with_retry_policy()`, else the op's, else the job's `op_retry_policy`)."""

    max_retries: int
    delay: float | None = None  # seconds before the first retry
    backoff: str | None = None  # "LINEAR" or "EXPONENTIAL" (Dagster's Backoff)
    jitter: str | None = None  # "FULL" or "PLUS_MINUS" (Dagster's Jitter)


@attrs.frozen
class Step:
    key: str
    upstream: tuple[str, ...]  # keys of the steps whose outputs it reads
    retry_policy: StepRetryPolicy | None = None


def step_retry_policy(job, step) -> StepRetryPolicy | None:
    """The RetryPolicy Dagster applies to an execution step, as plain data."""
    policy = job.get_retry_policy_for_handle(step.node_handle)
    if policy is None:
        return None
    return StepRetryPolicy(
        max_retries=policy.max_retries,
        delay=policy.delay,
        backoff=policy.backoff.value if policy.backoff else None,
        jitter=policy.jitter.value if policy.jitter else None,
    )


@attrs.frozen
class StepGraph:
    """A job's execution plan as plain data: its steps in topological order."""

    code_location: CodeLocation
    job_name: str
    run_config: dict[str, Any]
    steps: tuple[Step, ...]
    description: str | None = None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merged key by key, the later file winning, as `dagster job execute -c` does."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


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
            raise RunConfigError(
                f"run config file {path!r} is not valid YAML ({yaml_problem(exc)}); fix it."
            ) from exc
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
        # Dagster's "... at the root. You must provide ... Example config ..." as one sentence.
        problems = "; ".join(
            re.sub(
                r"\.\s+([A-Z])", lambda m: f"; {m.group(1).lower()}", " ".join(e.message.split())
            ).rstrip(".")
            for e in exc.errors
        )
        return RunConfigError(
            f"the run config for job {job_name!r} is invalid: {problems}; fix it in {where}."
        )
    if isinstance(exc, DagsterAirflowError):
        return exc
    return RunConfigError(
        f"cannot plan job {job_name!r} with the run config from {where}: "
        f"{type(exc).__name__}: {exc}"
    )


def compile_job(
    location: CodeLocation, job_name: str, run_config: Mapping[str, Any], where: str
) -> StepGraph:
    """Load the job, validate the run config against it and list its execution steps."""
    from dagster._core.execution.api import create_execution_plan

    location = resolve(location, job_name)
    job = load_job(location, job_name)
    try:
        plan = create_execution_plan(job, run_config=dict(run_config))
    except Exception as exc:
        if job.partitioned_config is not None:  # its config would come from a partition
            where += ", as the run config of one partition (the DAG does not choose partitions)"
        raise validation_error(exc, job_name, where) from exc
    dynamic = [s.key for s in plan.get_all_steps_in_topo_order() if "[?]" in s.key]
    if dynamic:
        raise DagsterAirflowError(
            f"job {job_name!r} has dynamic steps {dynamic}, whose number is known only at run "
            "time; one Airflow task per step cannot be scaffolded for them yet."
        )
    deps = plan.get_all_step_deps()
    steps = tuple(
        Step(
            key=s.key,
            upstream=tuple(sorted(deps.get(s.key, ()))),
            retry_policy=step_retry_policy(job, s),
        )
        for s in plan.get_all_steps_in_topo_order()
    )
    return StepGraph(
        code_location=location,
        job_name=job_name,
        run_config=dict(run_config),
        steps=steps,
        description=job.description,
    )
