"""`dagster-airflow check DAG_FILE`: does a scaffolded DAG file still match its job? (Dagster side)

The job named in the file is compiled again with the file's own code location and run config,
the DAG it would get is rendered, and both files are read the same way (as Python syntax, never
imported): their steps, edges, config schema, schedule and partitions, and each task's retry
settings. One line per difference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster_airflow.assets import DEFAULT_URI_TEMPLATE
from dagster_airflow.errors import ConfigurationError
from dagster_airflow.job.compile import compile_job
from dagster_airflow.job.params import expand_schema
from dagster_airflow.model import CodeLocation, RunnerSpec, StorageSpec
from dagster_airflow.scaffold.dag_file import DagText, parse_dag_text
from dagster_airflow.scaffold.dag_settings import SCHEDULE_NAME_TAG
from dagster_airflow.scaffold.environment import dag_environment
from dagster_airflow.scaffold.render import render_dag

DAGSTER_TIMETABLE = "DagsterCronTimetable("
# The DAG's arguments the job decides (besides its schedule): compared as written.
DAG_SETTINGS = ("tags", "is_paused_upon_creation", "max_active_tasks", "dagrun_timeout")


def differences(scaffolded: DagText, current: DagText) -> list[str]:
    """One line per way the file differs from what the job gives today."""
    lines = []
    old, new = scaffolded.steps, current.steps
    lines += [f"step added: {k!r}" for k in new if k not in old]
    lines += [f"step removed: {k!r}" for k in old if k not in new]
    for key in (k for k in new if k in old):
        for up in sorted(set(new[key]) - set(old[key])):
            lines.append(f"edge added: {up!r} >> {key!r}")
        for up in sorted(set(old[key]) - set(new[key])):
            lines.append(f"edge removed: {up!r} >> {key!r}")
        if scaffolded.retries.get(key) != current.retries.get(key):
            lines.append(
                f"retry policy of step {key!r}: {scaffolded.retries.get(key) or 'none'} in the "
                f"file, {current.retries.get(key) or 'none'} in the job"
            )
    # As the job states it: a shared op schema written once reads as each op's own.
    old_schema = expand_schema(scaffolded.literals.get("RUN_CONFIG_SCHEMA"))
    new_schema = expand_schema(current.literals.get("RUN_CONFIG_SCHEMA"))
    if old_schema != new_schema:
        lines.append(f"config schema changed: {_first_difference(old_schema, new_schema)}")
    lines += _environment_differences(scaffolded, current)
    lines += settings_differences(scaffolded, current)
    partitioned = scaffolded.partition or current.partition
    # An unpartitioned DAG starts on the day it was scaffolded: no drift.
    scheduled = any(DAGSTER_TIMETABLE in d.schedule for d in (scaffolded, current))
    for what in ("schedule", "start_date", "partition") if partitioned else ("schedule",):
        if scheduled:
            continue  # a Dagster schedule's: settings_differences says it
        before, after = getattr(scaffolded, what), getattr(current, what)
        if before != after:
            lines.append(
                f"partitions changed: {what} is {_one_line(before) or 'none'} in the file, "
                f"{_one_line(after) or 'none'} for the job"
            )
    return lines


def _environment_differences(scaffolded: DagText, current: DagText) -> list[str]:
    """A variable the job reads now that the file's ENVIRONMENT lacks. One the job no longer
    reads is no drift: the user may give a step variables of their own."""
    old = scaffolded.literals.get("ENVIRONMENT") or {}
    new = current.literals.get("ENVIRONMENT") or {}
    return [
        f"environment variable added: the job reads {name!r}, which ENVIRONMENT does not name; "
        f"add it there (or scaffold again with --env {name}=...) unless the step's own "
        "environment provides it"
        for name in new
        if name not in old
    ]


def settings_differences(scaffolded: DagText, current: DagText) -> list[str]:
    """The job's schedule, tags, pools, priorities, task limit and timeout (dag_settings.py)."""
    lines = []
    scheduled = any(DAGSTER_TIMETABLE in d.schedule for d in (scaffolded, current))
    for what in (("schedule",) if scheduled else ()) + DAG_SETTINGS:
        before = scaffolded.dag_arguments.get(what, "")
        after = current.dag_arguments.get(what, "")
        if _one_line(before) != _one_line(after):
            lines.append(
                f"{what} is {_one_line(before) or 'not set'} in the file, "
                f"{_one_line(after) or 'not set'} for the job"
            )
    old_args, new_args = scaffolded.default_args or {}, current.default_args or {}
    for what in ("priority_weight", "run_tags", "schedule_tick"):
        if old_args.get(what) != new_args.get(what):
            lines.append(
                f"DEFAULT_ARGS {what} is {old_args.get(what)!r} in the file, "
                f"{new_args.get(what)!r} for the job"
            )
    for key in (k for k in current.steps if k in scaffolded.steps):
        before, after = scaffolded.controls.get(key, {}), current.controls.get(key, {})
        for what in sorted(set(before) | set(after)):
            if before.get(what) != after.get(what):
                lines.append(
                    f"{what} of step {key!r}: {before.get(what) or 'none'} in the file, "
                    f"{after.get(what) or 'none'} in the job"
                )
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_difference(old: Any, new: Any, path: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            where = f"{path}.{key}" if path else key
            if key not in old:
                return f"{where} added"
            if key not in new:
                return f"{where} removed"
            if old[key] != new[key]:
                return _first_difference(old[key], new[key], where)
    return f"{path or 'the schema'} was {json.dumps(old)}, is {json.dumps(new)}"


def check_dag_file(path: str) -> list[str]:
    """The differences between a scaffolded DAG file and its job as it is now."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read DAG file {path!r}: {exc.strerror}.") from exc
    scaffolded = read_dag(text, f"DAG file {path!r}")
    default_args = scaffolded.literals.get("DEFAULT_ARGS", {})
    try:
        location = CodeLocation.from_dict(default_args["code_location"])
        job_name = default_args["job_name"]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"DAG file {path!r} has no code_location and job_name in DEFAULT_ARGS; scaffold it "
            "again."
        ) from None
    # RUN_CONFIG; in a file scaffolded before it, DEFAULT_ARGS' run_config.
    where = "RUN_CONFIG" if "RUN_CONFIG" in scaffolded.literals else "DEFAULT_ARGS"
    run_config = scaffolded.literals.get("RUN_CONFIG", default_args.get("run_config")) or {}
    schedule = (default_args.get("run_tags") or {}).get(SCHEDULE_NAME_TAG)
    graph = compile_job(location, job_name, run_config, f"{where} of {path!r}", schedule)
    runner = RunnerSpec.from_value(default_args.get("runner") or "subprocess")
    current_text = render_dag(
        graph,
        runner,
        StorageSpec.from_value(default_args.get("storage") or "filesystem"),
        dag_id="check",
        command="check",
        asset_uri_template=_asset_uri_template(text, scaffolded),
        schedule_on_assets="schedule=[ASSETS[" in text,
        environment=dag_environment(graph.environment, {}, runner.name),
    )
    return differences(scaffolded, read_dag(current_text, "the job's DAG"))


def read_dag(text: str, where: str) -> DagText:
    """The declarations of a DAG file dagster-airflow scaffolded; one sentence for another."""
    shape = parse_dag_text(text, where)
    if not shape.has_dag or not shape.steps:
        raise ConfigurationError(
            f"{where} is not a DAG file scaffolded by dagster-airflow (no DAG with "
            "DagsterOperator tasks); give the file `dagster-airflow scaffold --install` wrote."
        )
    return shape


def _asset_uri_template(text: str, shape: DagText) -> str:
    if shape.asset_uri_template is not None:
        return shape.asset_uri_template
    # A file scaffolded before ASSET_URI_TEMPLATE said it in a comment.
    marker = "# Airflow Assets (URI: "
    start = text.find(marker)
    if start < 0:
        return DEFAULT_URI_TEMPLATE
    return text[start + len(marker) : text.index(").", start)]
