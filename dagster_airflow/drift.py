"""`dagster-airflow check DAG_FILE`: does a scaffolded DAG file still match its job? (Dagster side)

The job named in the file is compiled again with the file's own code location and run config,
the DAG it would get is rendered, and both files are read the same way (as Python syntax, never
imported): their steps, edges, config schema, schedule and partitions, and each task's retry
settings. One line per difference.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

import attrs

from dagster_airflow.errors import ConfigurationError
from dagster_airflow.params import expand_schema

# Task arguments the scaffold writes from a Dagster retry policy.
RETRY_ARGUMENTS = ("retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay")


def plan_fingerprint(graph) -> str:
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


@attrs.frozen
class DagShape:
    """What a DAG file projects from its job, read from its text."""

    steps: dict[str, tuple[str, ...]]  # step key -> the step keys upstream of it
    retries: dict[str, dict[str, str]]  # step key -> retry argument -> its source text
    literals: dict[str, Any]  # DEFAULT_ARGS, RUN_CONFIG_SCHEMA
    schedule: str
    start_date: str
    partition: str  # the partition param's source text ("" when none)


def _source(text: str, node: ast.AST | None) -> str:
    return ast.get_source_segment(text, node) or "" if node is not None else ""


def read_dag(text: str, where: str) -> DagShape:
    """The shape of a scaffolded DAG file's text."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ConfigurationError(f"{where} is not valid Python: {exc}; scaffold it again.") from exc
    literals: dict[str, Any] = {}
    names: dict[str, str] = {}  # variable -> step key
    retries: dict[str, dict[str, str]] = {}
    upstream: dict[str, set[str]] = {}
    dag_call: ast.Call | None = None
    partition = ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if target in ("DEFAULT_ARGS", "RUN_CONFIG_SCHEMA"):
                literals[target] = _literal_value(text, node.value)
            elif target == "PARAMS" and isinstance(node.value, ast.Dict):
                for key, value in zip(node.value.keys, node.value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "partition":
                        partition = _source(text, value)
            elif isinstance(node.value, ast.Call) and _called(node.value) == "DagsterOperator":
                arguments = {k.arg: k.value for k in node.value.keywords if k.arg}
                # The step key is written only where it is not the task id.
                step_key = ast.literal_eval(arguments.get("step_key", arguments["task_id"]))
                names[target] = step_key
                upstream.setdefault(step_key, set())
                retries[step_key] = {
                    name: _source(text, arguments[name])
                    for name in RETRY_ARGUMENTS
                    if name in arguments
                }
        elif isinstance(node, ast.With):
            for item in node.items:
                if isinstance(item.context_expr, ast.Call) and _called(item.context_expr) == "DAG":
                    dag_call = item.context_expr
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            ups = _operands(node.left)
            for down in _operands(node.right):
                for up in ups:
                    if up in names and down in names:
                        upstream[names[down]].add(names[up])
    if dag_call is None or not names:
        raise ConfigurationError(
            f"{where} is not a DAG file scaffolded by dagster-airflow (no DAG with "
            "DagsterOperator tasks); give the file `dagster-airflow scaffold --install` wrote."
        )
    dag_arguments = {k.arg: k.value for k in dag_call.keywords if k.arg}
    return DagShape(
        steps={k: tuple(sorted(v)) for k, v in upstream.items()},
        retries=retries,
        literals=literals,
        schedule=_source(text, dag_arguments.get("schedule")),
        start_date=_source(text, dag_arguments.get("start_date")),
        partition=partition,
    )


def _called(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else ""


def _operands(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [e.id for e in node.elts if isinstance(e, ast.Name)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
        return _operands(node.right)  # a >> b >> c: the right end feeds what follows
    return []


def _literal_value(text: str, node: ast.AST) -> Any:
    """A literal as data; a name or a call inside it (RUN_CONFIG_SCHEMA, timedelta) as its text."""
    if isinstance(node, ast.Dict):
        return {
            ast.literal_eval(k): _literal_value(text, v)
            for k, v in zip(node.keys, node.values, strict=True)
            if k is not None
        }
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _source(text, node)


def differences(scaffolded: DagShape, current: DagShape) -> list[str]:
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
    partitioned = scaffolded.partition or current.partition
    # An unpartitioned DAG starts on the day it was scaffolded: no drift.
    for what in ("schedule", "start_date", "partition") if partitioned else ("schedule",):
        before, after = getattr(scaffolded, what), getattr(current, what)
        if before != after:
            lines.append(
                f"partitions changed: {what} is {_one_line(before) or 'none'} in the file, "
                f"{_one_line(after) or 'none'} for the job"
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
    from dagster_airflow.compile import compile_job
    from dagster_airflow.model import CodeLocation, RunnerSpec, StorageSpec
    from dagster_airflow.scaffold import render_dag

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
    run_config = default_args.get("run_config") or {}
    graph = compile_job(location, job_name, run_config, f"DEFAULT_ARGS of {path!r}")
    current_text = render_dag(
        graph,
        RunnerSpec.from_value(default_args.get("runner") or "subprocess"),
        StorageSpec.from_value(default_args.get("storage") or "filesystem"),
        dag_id="check",
        command="check",
        asset_uri_template=_asset_uri_template(text),
        schedule_on_assets="schedule=[ASSETS[" in text,
    )
    return differences(scaffolded, read_dag(current_text, "the job's DAG"))


def _asset_uri_template(text: str) -> str:
    from dagster_airflow.assets import DEFAULT_URI_TEMPLATE

    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "ASSET_URI_TEMPLATE"
        ):
            return ast.literal_eval(node.value)
    # A file scaffolded before ASSET_URI_TEMPLATE said it in a comment.
    marker = "# Airflow Assets (URI: "
    start = text.find(marker)
    if start < 0:
        return DEFAULT_URI_TEMPLATE
    return text[start + len(marker) : text.index(").", start)]
