"""Dagster job + run config -> StepGraph: the plain data a DAG file is made of (Dagster side)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dagster_airflow.assets import source_assets, step_assets
from dagster_airflow.errors import DagsterAirflowError, RunConfigError, yaml_problem
from dagster_airflow.job.code_location import repository_of, resolve
from dagster_airflow.job.controls import JobControls, StepControls, job_controls, step_controls
from dagster_airflow.job.environment import reading_environment
from dagster_airflow.job.params import run_config_schema, with_placeholders
from dagster_airflow.job.partitions import Partitioning, partitioning, scaffold_run_config
from dagster_airflow.job.schedules import (
    Schedule,
    pick_schedule,
    planning_run_config,
    schedule_spec,
    schedules_of,
)
from dagster_airflow.model import CodeLocation
from dagster_airflow.run_conf import deep_merge


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
    key: str  # a mapped step's key ends in [?]: Dagster's key before the mapping keys are known
    upstream: tuple[str, ...]  # keys of the steps whose outputs it reads
    # A mapped step (downstream of .map()): the (step key, output name) of the dynamic output
    # whose mapping keys it is mapped over, one Airflow task instance per key.
    mapped_over: tuple[str, str] | None = None
    # The dynamic output whose mapping keys this step returns as its XCom, for the steps mapped
    # over it.
    mapping_keys_of: str | None = None
    # An input reads several sources (a list fan-in, or a .collect() over a mapped step): it runs
    # when no upstream failed and loads the sources that were produced, as Dagster does.
    fan_in: bool = False
    collect: bool = False  # a .collect(): reads every mapped output, in Dagster's order
    retry_policy: StepRetryPolicy | None = None  # Dagster's, as Airflow's retries
    assets: tuple[str, ...] = ()  # the asset keys ("a/b") it materializes


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
class OpDoc:
    """What the DAG's docs say of the op (or asset) a step runs."""

    name: str  # its definition's name
    description: str | None = None


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
    # The op each step runs, by step key, for the DAG's docs (not part of the plan's fingerprint).
    ops: dict[str, OpDoc] = attrs.field(factory=dict)
    # The environment variables Dagster's config reads for the job (a resource's EnvVar,
    # {env: NAME} in run config), in the order read: the DAG's ENVIRONMENT (environment.py).
    environment: tuple[str, ...] = ()
    # The job's Dagster schedule (see schedules.py), and its tags, pools, priorities, limits.
    schedule: Schedule | None = None
    controls: JobControls = attrs.field(factory=JobControls)
    step_controls: dict[str, StepControls] = attrs.field(factory=dict)  # by step key


def load_run_config(paths: Sequence[str]) -> dict[str, Any]:
    """The run config YAML files merged in order."""
    import yaml

    from dagster_airflow.job.yaml_files import load_yaml, read_text

    merged: dict[str, Any] = {}
    for path in paths:
        what = f"run config file {path!r}"
        try:
            data = load_yaml(read_text(path, what, RunConfigError), what, RunConfigError)
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


def plan_steps(plan, job_name: str, job) -> tuple[Step, ...]:
    """The plan's steps with what Airflow's task mapping needs to know of each; what it cannot
    express is refused in one sentence."""
    from dagster_airflow.job.dagster_compat import (
        FromMultipleSources,
        UnresolvedCollectExecutionStep,
        UnresolvedMappedExecutionStep,
    )

    ordered = plan.get_all_steps_in_topo_order()
    mapped_over = {
        s.key: (s.resolved_by_step_key, s.resolved_by_output_name)
        for s in ordered
        if isinstance(s, UnresolvedMappedExecutionStep)
    }
    keys_of: dict[str, set[str]] = {}
    for producer, output in mapped_over.values():
        keys_of.setdefault(producer, set()).add(output)
    for producer, outputs in keys_of.items():
        if producer in mapped_over:
            raise DagsterAirflowError(
                f"job {job_name!r} maps over the dynamic output of step {producer!r}, which is "
                "itself mapped: Airflow cannot map a task inside a mapped task (nested "
                "mapping); collect the inner results in the mapped op instead."
            )
        if len(outputs) > 1:
            raise DagsterAirflowError(
                f"job {job_name!r} maps over {len(outputs)} dynamic outputs of op {producer!r} "
                f"({', '.join(sorted(outputs))}): Airflow maps tasks over the one list a task "
                "returns; give each DynamicOut an op of its own."
            )
    deps = plan.get_all_step_deps()
    return tuple(
        Step(
            key=s.key,
            upstream=tuple(sorted(deps.get(s.key, ()))),
            mapped_over=mapped_over.get(s.key),
            mapping_keys_of=next(iter(keys_of[s.key])) if s.key in keys_of else None,
            fan_in=isinstance(s, UnresolvedCollectExecutionStep)
            or any(isinstance(i.source, FromMultipleSources) for i in s.step_inputs),
            collect=isinstance(s, UnresolvedCollectExecutionStep),
            retry_policy=step_retry_policy(job, s),
            assets=step_assets(job, s),
        )
        for s in ordered
    )


def compile_job(
    location: CodeLocation,
    job_name: str,
    run_config: Mapping[str, Any],
    where: str,
    schedule: str | None = None,
) -> StepGraph:
    """Load the job, validate the run config against it and list its execution steps."""
    from dagster_airflow.job.dagster_compat import create_execution_plan

    location = resolve(location, job_name)
    repository = repository_of(location, job_name)
    job = repository.get_job(job_name)
    partitions = partitioning(job)
    # The variables the config reads are recorded, not read: none need be set here.
    with reading_environment() as environment:
        chosen = pick_schedule(schedules_of(repository, job_name), job_name, schedule)
        schedule_def = schedule_spec(chosen, job_name) if chosen is not None else None
        if schedule_def is not None and not schedule_def.evaluated:
            # A static schedule's run config is the DAG's; the user's files are merged over it.
            run_config = deep_merge(schedule_def.run_config, dict(run_config))
        schema = run_config_schema(job, run_config)
        planned = scaffold_run_config(job, with_placeholders(dict(run_config), schema))
        if schedule_def is not None and schedule_def.evaluated:
            # Each run's config is its tick's: plan with one the schedule gives.
            planned = deep_merge(planning_run_config(chosen, job_name), planned)
        try:
            plan = create_execution_plan(job, run_config=planned)
        except Exception as exc:
            if job.partitioned_config is not None:  # its config would come from a partition
                where += ", merged over the run config of the job's first partition"
            raise validation_error(exc, job_name, where) from exc
    steps = plan_steps(plan, job_name, job)
    return StepGraph(
        code_location=location,
        job_name=job_name,
        run_config=dict(run_config),
        steps=steps,
        description=job.description,
        config_schema=schema,
        partitions=partitions,
        source_assets=source_assets(job, plan.get_all_steps_in_topo_order()),
        ops=op_docs(job, plan.get_all_steps_in_topo_order()),
        environment=tuple(environment),
        schedule=schedule_def,
        controls=job_controls(job, planned),
        step_controls={s.key: step_controls(job, s) for s in plan.get_all_steps_in_topo_order()},
    )


def op_docs(job, steps) -> dict[str, OpDoc]:
    """The op each step runs: its definition's name and description."""
    docs = {}
    for step in steps:
        definition = job.get_node(step.node_handle).definition
        docs[step.key] = OpDoc(definition.name, definition.description)
    return docs


def plan_fingerprint(graph: StepGraph) -> str:
    """A short hash of what the DAG projects from the job: steps, edges, assets, config schema,
    partitions. A changed job gives a new fingerprint, and so a new DAG version in Airflow."""
    data = {
        "job": graph.job_name,
        "steps": [attrs.asdict(s) for s in graph.steps],
        "config_schema": graph.config_schema,
        "partitions": attrs.asdict(graph.partitions) if graph.partitions else None,
    }
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
