"""What a Dagster job says around its ops, as Airflow's DAG and task settings (Dagster side).

Job tags become DAG tags; an op's concurrency pool its task's Airflow ``pool``; ``dagster/priority``
the ``priority_weight``; the executor's ``max_concurrent`` the DAG's ``max_active_tasks``; the
``dagster/max_runtime`` tag the ``dagrun_timeout``. What Airflow cannot express is said in one
sentence each (``JobControls.notes``), which the scaffold prints on standard error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError

PRIORITY, MAX_RUNTIME, CONCURRENCY_KEY = (
    "dagster/priority",
    "dagster/max_runtime",
    ("dagster/concurrency_key"),
)
MAX_TAG_LENGTH = 100  # Airflow's DAG tags: strings of at most 100 characters


@attrs.frozen
class StepControls:
    """A step's task settings: its Airflow pool and priority weight (None: Airflow's default)."""

    pool: str | None = None
    priority: int | None = None


@attrs.frozen
class JobControls:
    """The DAG's settings from the job: plain data."""

    tags: tuple[str, ...] = ()  # the DAG's tags besides "dagster"
    priority: int | None = None  # every task's priority_weight (the job's dagster/priority)
    max_active_tasks: int | None = None  # the executor's max_concurrent
    timeout_seconds: float | None = None  # dagrun_timeout, from dagster/max_runtime
    notes: tuple[str, ...] = ()  # one sentence for each thing Airflow cannot express


def _integer(value: Any, what: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigurationError(
            f"{what} is {value!r}, which is not a whole number; Dagster and Airflow both take "
            "an integer priority."
        ) from None


def dag_tags(tags: Mapping[str, str], where: str) -> tuple[tuple[str, ...], list[str]]:
    """``key:value`` DAG tags for a job's (or schedule's) own tags, and a note for each that
    Airflow cannot hold (Dagster's system tags ``dagster/...`` are mapped apart)."""
    written, notes = [], []
    for key, value in tags.items():
        if key.startswith("dagster/"):
            continue
        tag = f"{key}:{value}" if value else key
        if len(tag) > MAX_TAG_LENGTH:
            notes.append(
                f"the tag {tag[:40]!r}... of {where} is {len(tag)} characters long and Airflow's "
                f"DAG tags hold at most {MAX_TAG_LENGTH}; it is left out of the DAG's tags."
            )
            continue
        written.append(tag)
    return tuple(written), notes


def _executor_limit(job, run_config: Mapping[str, Any]) -> tuple[int | None, list[str]]:
    """The executor's cap on steps at once: in_process runs one, multiprocess its
    max_concurrent (0 or none: as many as CPUs, which Airflow leaves to its own limits)."""
    from dagster_airflow.job.dagster_compat import ResolvedRunConfig

    try:
        config = ResolvedRunConfig.build(job, dict(run_config)).execution.execution_engine_config
    except Exception:  # the run config is judged (with a sentence) where the plan is made
        return None, []
    name = job.executor_def.name
    if name == "in_process" or (isinstance(config, Mapping) and "in_process" in config):
        return 1, []
    if isinstance(config, Mapping) and "multiprocess" in config:
        config = config["multiprocess"] or {}
    notes = []
    if isinstance(config, Mapping) and config.get("tag_concurrency_limits"):
        notes.append(
            f"the executor of job {job.name!r} limits steps by tag (tag_concurrency_limits), "
            "which Airflow cannot express per DAG; give those ops a pool= each (an Airflow pool "
            "of that many slots) instead."
        )
    limit = config.get("max_concurrent") if isinstance(config, Mapping) else None
    return (limit or None), notes


def job_controls(job, run_config: Mapping[str, Any]) -> JobControls:
    """The DAG's tags, priority, task limit and timeout for the job."""
    tags = dict(job.tags or {})
    written, notes = dag_tags(tags, f"job {job.name!r}")
    priority = (
        _integer(tags[PRIORITY], f"the {PRIORITY} tag of job {job.name!r}")
        if (PRIORITY in tags)
        else None
    )
    timeout = None
    if MAX_RUNTIME in tags:
        try:
            timeout = float(tags[MAX_RUNTIME])
        except ValueError:
            raise ConfigurationError(
                f"the {MAX_RUNTIME} tag of job {job.name!r} is {tags[MAX_RUNTIME]!r}, not a "
                "number of seconds; write it as a number such as '3600'."
            ) from None
    limit, executor_notes = _executor_limit(job, run_config)
    if "dagster/max_retries" in tags:
        notes.append(
            f"job {job.name!r} asks Dagster to retry a failed run (dagster/max_retries), and "
            "Airflow retries tasks, not runs: give the ops a RetryPolicy instead (their tasks' "
            "retries)."
        )
    return JobControls(
        tags=written,
        priority=priority,
        max_active_tasks=limit,
        timeout_seconds=timeout,
        notes=tuple(notes + executor_notes),
    )


def step_controls(job, step) -> StepControls:
    """A step's pool (the op's ``pool=``, else its dagster/concurrency_key tag) and priority
    (its dagster/priority tag)."""
    tags = step.tags or {}
    pool = getattr(step, "pool", None) or tags.get(CONCURRENCY_KEY)
    priority = tags.get(PRIORITY)
    if priority is not None and PRIORITY in (job.tags or {}) and priority == job.tags[PRIORITY]:
        priority = None  # the job's, written once for the DAG
    return StepControls(
        pool=pool,
        priority=None
        if priority is None
        else _integer(priority, f"the {PRIORITY} of {step.key!r}"),
    )
